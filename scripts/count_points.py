#!/usr/bin/env python3
"""Print how many benchmark points kairosd has made queryable (for ../shared/bench).

Cheap while ingest runs: until /metrics says at least --n points were committed it prints
that counter; after that it counts through the query API (a count aggregator over one
range, whose sample_size is the number of points read), so the final figure is verified end to end.

  NEW_COUNT_CMD='python3 scripts/count_points.py --port 28080 --start {base_ts} --end {last_ts} --n {n}'
"""
import argparse
import json
import urllib.request


def call(url, body=None):
    assert url.startswith('http://127.0.0.1:')
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--prefix', default='bench')
    ap.add_argument('--start', type=int, required=True, help='first timestamp, seconds')
    ap.add_argument('--end', type=int, required=True, help='last timestamp, seconds')
    ap.add_argument('--n', type=int, default=0, help='points expected')
    a = ap.parse_args()
    base = f'http://127.0.0.1:{a.port}'
    written = 0
    for line in call(f'{base}/metrics').decode().splitlines():
        if line.startswith('kairosd_points_written_total '):
            written = int(float(line.split()[1]))
    if written < a.n:
        print(written)
        return
    names = json.loads(call(f'{base}/api/v1/metricnames?prefix={a.prefix}'))['results']
    q = {'start_absolute': a.start * 1000, 'end_absolute': a.end * 1000 + 999,
         'metrics': [{'name': n, 'aggregators': [
             {'name': 'count', 'sampling': {'value': 1000, 'unit': 'years'}}]} for n in names]}
    res = json.loads(call(f'{base}/api/v1/datapoints/query', q))
    print(sum(qr['sample_size'] for qr in res['queries']))


if __name__ == '__main__':
    main()
