"""Keyed tables on the metadata API: insert, get, replace, keys, delete, reopening,
frozen versions that refuse writes, and the errors, against a real kairosd."""

from __future__ import annotations

import datetime as dt

import pytest

from kairosd_client import Client, KairosdError


def test_insert_get_replace_keys_delete(client: Client, name: str) -> None:
    users = client.create_table(name, primary_key="id")
    users.insert({"id": 1, "name": "ada", "seen": dt.datetime(2024, 1, 2, 3, 4, 5)})
    users.insert({"id": "2", "name": "bob", "tags": ["x"]})
    users.insert({"id": 20, "name": "twenty"})
    assert users.get(1) == {"id": 1, "name": "ada", "seen": "2024-01-02T03:04:05"}
    assert users.get("1") == users.get(1)
    assert users.get(404) is None
    assert users.keys() == ["1", "2", "20"]
    assert users.keys(starts_with="2") == ["2", "20"]
    users.insert({"id": 2, "name": "bobby"})  # the whole row is replaced
    assert users.get(2) == {"id": 2, "name": "bobby"}
    users.delete(20)
    users.delete(20)  # no error when absent
    assert users.keys() == ["1", "2"]
    # Reopened from its stored schema; the rows are plain metadata values too.
    again = client.table(name)
    assert again.primary_key == "id" and again.get(1)["name"] == "ada"
    assert client._t.request("GET", "/api/v1/metadata/%s/rows/2" % name).json() == {"id": 2, "name": "bobby"}


def test_make_immutable_freezes_and_refuses_writes(client: Client, name: str) -> None:
    t = client.create_table(name, "sku")
    t.insert({"sku": "a", "price": 1})
    t.insert({"sku": "b", "price": 2})
    assert t.make_immutable(1) is t
    assert t.immutable and t.version == 1 and t.service == name + "@1"
    assert t.get("a") == {"sku": "a", "price": 1}
    with pytest.raises(KairosdError) as e:
        t.insert({"sku": "a", "price": 100})
    assert e.value.status == 409 and "immutable" in e.value.errors[0], e.value.errors
    with pytest.raises(KairosdError) as e:
        t.delete("b")
    assert e.value.status == 409
    with pytest.raises(KairosdError) as e:
        t.make_immutable(2)  # a frozen version cannot be frozen again
    assert e.value.status == 409
    # The live table goes on; the frozen version does not change.
    live = client.table(name)
    live.insert({"sku": "a", "price": 5})
    assert live.get("a")["price"] == 5 and t.get("a")["price"] == 1
    assert client.table(name, version=1).keys() == ["a", "b"]
    with pytest.raises(KairosdError) as e:
        live.make_immutable(1)  # version 1 exists
    assert e.value.status == 409 and "already exists" in e.value.errors[0]
    v2 = client.table(name).make_immutable(2)
    assert v2.get("a")["price"] == 5


def test_table_errors(client: Client, name: str) -> None:
    t = client.create_table(name, "id")
    with pytest.raises(KairosdError) as e:
        client.create_table(name, "id")
    assert e.value.status is None and "already exists" in str(e.value)
    assert client.create_table(name, "id", exist_ok=True).primary_key == "id"
    with pytest.raises(KairosdError):
        client.create_table(name, "other", exist_ok=True)
    with pytest.raises(KeyError, match="primary key"):
        t.insert({"name": "no id"})
    with pytest.raises(ValueError, match="NaN|JSON"):
        t.insert({"id": 1, "x": float("nan")})
    with pytest.raises(TypeError):
        t.get(1.5)
    with pytest.raises(ValueError, match="internal"):
        client.create_table("_" + name, "id")
    with pytest.raises(ValueError, match="reserved"):
        client.create_table(name + "@3", "id")
    with pytest.raises(KairosdError, match="does not exist"):
        client.table(name + "-missing")
    with pytest.raises(KairosdError, match="version 9"):
        client.table(name, version=9)
    # The daemon's own refusal of KairosDB's internal namespace, seen through the client.
    with pytest.raises(KairosdError) as e:
        client._t.request("GET", "/api/v1/metadata/_internal/x/y")
    assert e.value.status == 401


def test_odd_names_round_trip(client: Client, name: str) -> None:
    t = client.create_table(name + " a/b", "k")
    t.insert({"k": "x/y z?&", "v": 1})
    assert t.get("x/y z?&") == {"k": "x/y z?&", "v": 1}
    assert t.keys() == ["x/y z?&"]
