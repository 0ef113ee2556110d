//! KairosDB's metadata service API (`/api/v1/metadata/...`, spec 4.1) against a real
//! kairosd: list, get, post, delete, the `_` namespace, versioned read-only snapshots,
//! and persistence across a restart.

mod common;

use common::{http, Daemon};
use serde_json::json;

fn req(d: &Daemon, method: &str, path: &str, body: &str) -> common::HttpResponse {
    http(d.http, method, path, &[("Content-Type", "text/plain")], body.as_bytes())
}

#[test]
fn keyed_tables_on_the_metadata_api() {
    let d = Daemon::start(&[]);
    for (path, value) in [
        ("/api/v1/metadata/users/by_id/1", r#"{"name":"ada"}"#),
        ("/api/v1/metadata/users/by_id/2", r#"{"name":"bob"}"#),
        ("/api/v1/metadata/users/by_id/20", "twenty"),
        ("/api/v1/metadata/users/by_name/ada", "1"),
        ("/api/v1/metadata/other/k/x", "y"),
    ] {
        let r = req(&d, "POST", path, value);
        assert_eq!(r.status, 204, "{path}: {}", r.text());
    }
    let r = d.get("/api/v1/metadata/users/by_id/1");
    assert_eq!((r.status, r.text()), (200, r#"{"name":"ada"}"#.to_string()));
    assert_eq!(
        d.get("/api/v1/metadata/users").json(),
        json!({"results": ["by_id", "by_name"]})
    );
    assert_eq!(
        d.get("/api/v1/metadata/users/by_id").json(),
        json!({"results": ["1", "2", "20"]})
    );
    assert_eq!(
        d.get("/api/v1/metadata/users/by_id?startsWith=2").json(),
        json!({"results": ["2", "20"]})
    );
    assert_eq!(
        d.get("/api/v1/metadata/users?startsWith=by_n").json(),
        json!({"results": ["by_name"]})
    );
    assert_eq!(d.get("/api/v1/metadata/nobody").json(), json!({"results": []}));
    // Overwrite, then a missing key: an empty body, as KairosDB answers.
    assert_eq!(req(&d, "POST", "/api/v1/metadata/users/by_id/2", "bobby").status, 204);
    assert_eq!(d.get("/api/v1/metadata/users/by_id/2").text(), "bobby");
    let r = d.get("/api/v1/metadata/users/by_id/404");
    assert_eq!((r.status, r.text()), (200, String::new()));
    assert_eq!(req(&d, "DELETE", "/api/v1/metadata/users/by_id/20", "").status, 204);
    assert_eq!(
        d.get("/api/v1/metadata/users/by_id").json(),
        json!({"results": ["1", "2"]})
    );
    // Names with slashes and spaces, percent-encoded.
    assert_eq!(
        req(&d, "POST", "/api/v1/metadata/users/by_path/a%2Fb%20c", "v").status,
        204
    );
    assert_eq!(
        d.get("/api/v1/metadata/users/by_path").json(),
        json!({"results": ["a/b c"]})
    );

    // KairosDB's internal namespace.
    for method in ["GET", "POST", "DELETE"] {
        let r = req(&d, method, "/api/v1/metadata/_internal/k/x", "v");
        assert_eq!((r.status, r.text()), (401, String::new()), "{method}");
    }

    // A versioned snapshot is read-only; the live table goes on.
    let r = req(&d, "POST", "/api/v1/metadata/users/_snapshot?version=1", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"service": "users@1", "version": 1, "entries": 4}));
    assert_eq!(d.get("/api/v1/metadata/users@1/by_id/2").text(), "bobby");
    let r = req(&d, "POST", "/api/v1/metadata/users@1/by_id/2", "changed");
    assert_eq!(r.status, 409);
    assert!(r.errors()[0].contains("immutable"), "{:?}", r.errors());
    assert_eq!(req(&d, "DELETE", "/api/v1/metadata/users@1/by_id/2", "").status, 409);
    assert_eq!(req(&d, "POST", "/api/v1/metadata/users/by_id/2", "live").status, 204);
    assert_eq!(d.get("/api/v1/metadata/users@1/by_id/2").text(), "bobby");
    assert_eq!(d.get("/api/v1/metadata/users/by_id/2").text(), "live");
    let r = req(&d, "POST", "/api/v1/metadata/users/_snapshot?version=1", "");
    assert_eq!(r.status, 409, "a version is frozen once");
    assert_eq!(
        req(&d, "POST", "/api/v1/metadata/users/_snapshot?version=x", "").status,
        400
    );
    assert_eq!(req(&d, "POST", "/api/v1/metadata/users/_snapshot", "").status, 400);
    assert_eq!(req(&d, "POST", "/api/v1/metadata/users/by_id", "v").status, 405);
    assert_eq!(req(&d, "PUT", "/api/v1/metadata/users/by_id/1", "v").status, 405);

    // Everything survives a restart.
    let (dir, tmp) = d.stop();
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(d.get("/api/v1/metadata/users/by_id/1").text(), r#"{"name":"ada"}"#);
    assert_eq!(d.get("/api/v1/metadata/users@1/by_id/2").text(), "bobby");
    assert_eq!(req(&d, "POST", "/api/v1/metadata/users@1/by_id/9", "v").status, 409);
    assert_eq!(d.get("/api/v1/metadata/other/k/x").text(), "y");
    // Deleting a whole service.
    assert_eq!(req(&d, "DELETE", "/api/v1/metadata/other", "").status, 204);
    assert_eq!(d.get("/api/v1/metadata/other").json(), json!({"results": []}));
    drop(d);
    drop(tmp);
}
