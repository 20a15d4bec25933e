use crate::helpers::{Backend, TestApp, example, spawn_app_on, spawn_cpo};
use reqwest::Method;
use serde_json::{Value, json};

const LOCATION_EXAMPLES: [&str; 6] = [
    "location_example.json",
    "location_example_parking_garage_opening_hours.json",
    "location_example_uc2_destination_charger.json",
    "location_example_uc3_destination_charger_not_published.json",
    "location_example_uc4_limited_visibility.json",
    "location_example_uc5_home_charge_point.json",
];

fn path_of(loc: &Value) -> String {
    format!(
        "/ocpi/2.2.1/locations/{}/{}/{}",
        loc["country_code"].as_str().unwrap(),
        loc["party_id"].as_str().unwrap(),
        loc["id"].as_str().unwrap()
    )
}

async fn app_with_cpo(backend: Backend) -> TestApp {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app
}

async fn official_examples_are_accepted(backend: Backend) {
    let app = app_with_cpo(backend).await;
    // uc2 and uc3 are the same location (published, then not): 5 locations, 5 EVSEs.
    let mut locations = std::collections::BTreeSet::new();
    let mut evse_uids = std::collections::BTreeSet::new();
    for name in LOCATION_EXAMPLES {
        let loc = example(name);
        // 201 for a location evflex did not have, 200 for one it updates (OCPI status codes).
        let created = if locations.insert(path_of(&loc)) {
            201
        } else {
            200
        };
        for e in loc["evses"].as_array().into_iter().flatten() {
            evse_uids.insert(e["uid"].as_str().unwrap().to_owned());
        }
        let (status, body) = app.cpo(Method::PUT, &path_of(&loc), Some(&loc)).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (created, Some(1000)),
            "{name}: {body}"
        );
    }
    let evses = evse_uids.len();
    assert_eq!(app.count("locations").await, locations.len() as i64);
    assert_eq!(app.count("evses").await, evses as i64);
    // Every new EVSE is a chain asset (re-sending unchanged data enqueues nothing).
    assert_eq!(app.outbox("asset_upsert").await.len(), evses);

    // Read back: the location with its EVSEs and connectors, as received.
    let (status, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/locations/BE/BEC/LOC1", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["name"], "Gent Zuid");
    assert_eq!(body["data"]["evses"][0]["uid"], "3256");
    assert_eq!(
        body["data"]["evses"][0]["connectors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // PUT of one EVSE (the official example: connectors without power ratings).
    let evse = example("location_put_example_add_evse.json");
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256",
            Some(&evse),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256", None)
        .await;
    assert_eq!(body["data"]["evse_id"], "BE*BEC*E041503003");

    // PATCHes: location name, EVSE status, connector tariffs, opening hours, energy mix.
    let patches = [
        (
            "/ocpi/2.2.1/locations/BE/BEC/LOC1",
            example("location_patch_example_location.json"),
        ),
        (
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3257",
            example("location_patch_example_status.json"),
        ),
        (
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256/1",
            example("location_patch_example_tariff.json"),
        ),
        (
            "/ocpi/2.2.1/locations/BE/BEC/LOC1",
            json!({"opening_times": example("location_hours_247_open_exception_closing.json"),
                   "last_updated": "2019-06-24T12:39:09Z"}),
        ),
        (
            "/ocpi/2.2.1/locations/BE/BEC/LOC1",
            json!({"opening_times": example("location_hours_opening_hours_with_exceptional_closing.json"),
                   "last_updated": "2019-06-24T12:39:09Z"}),
        ),
        (
            "/ocpi/2.2.1/locations/BE/BEC/LOC1",
            json!({"opening_times": example("location_hours_opening_hours_with_exceptional_opening.json"),
                   "last_updated": "2019-06-24T12:39:09Z"}),
        ),
    ];
    for (path, patch) in &patches {
        let (status, body) = app.cpo(Method::PATCH, path, Some(patch)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for name in [
        "location_regularhours_example.json",
        "location_energymix_example_complete.json",
        "location_energymix_example_energy_provider.json",
        "location_energymix_example_simple.json",
    ] {
        let mut patch = example(name);
        patch["last_updated"] = json!("2019-06-24T12:39:09Z");
        let (status, body) = app
            .cpo(
                Method::PATCH,
                "/ocpi/2.2.1/locations/BE/BEC/LOC1",
                Some(&patch),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (_, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/locations/BE/BEC/LOC1", None)
        .await;
    assert_eq!(body["data"]["name"], "Interparking Gent Zuid");
    assert!(body["data"]["energy_mix"].is_object());
    let (_, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/locations/BE/BEC/LOC1/3257", None)
        .await;
    assert_eq!(body["data"]["status"], "CHARGING");
    let (_, body) = app
        .cpo(
            Method::GET,
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256/1",
            None,
        )
        .await;
    assert_eq!(body["data"]["tariff_ids"], json!(["15"]));

    // Removing an EVSE deactivates its chain asset.
    let before = app.outbox("asset_upsert").await.len();
    let (status, _) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3257",
            Some(&example("location_patch_example_remove_evse.json")),
        )
        .await;
    assert_eq!(status, 200);
    let assets = app.outbox("asset_upsert").await;
    assert_eq!(assets.len(), before + 1);
    let last: Value = serde_json::from_str(&assets.last().unwrap().payload).unwrap();
    assert_eq!(last["evse_uid"], "3257");
    assert_eq!(last["active"], false);
}

#[tokio::test]
async fn official_location_examples_postgres() {
    official_examples_are_accepted(Backend::Postgres).await;
}

#[tokio::test]
async fn official_location_examples_sqlite() {
    official_examples_are_accepted(Backend::Sqlite).await;
}

#[tokio::test]
async fn malformed_locations_are_rejected_whole() {
    let app = app_with_cpo(Backend::Postgres).await;
    let mut loc = example("location_example.json");
    loc["evses"][1]["status"] = json!("FLYING");
    let (status, body) = app.cpo(Method::PUT, &path_of(&loc), Some(&loc)).await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));
    assert_eq!(body["status_code"], 2001);
    let msg = body["status_message"].as_str().unwrap();
    assert!(msg.starts_with("evses[1].status"), "{msg}");
    // Nothing partial: neither the location nor its first (valid) EVSE.
    assert_eq!(app.count("locations").await, 0);
    assert_eq!(app.count("evses").await, 0);
    assert_eq!(app.count("chain_outbox").await, 0);

    let mut loc = example("location_example.json");
    loc.as_object_mut().unwrap().remove("coordinates");
    let (status, body) = app.cpo(Method::PUT, &path_of(&loc), Some(&loc)).await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .contains("coordinates"),
        "{body}"
    );

    let mut loc = example("location_example.json");
    loc["evses"][0]["connectors"][0]["max_voltage"] = json!("high");
    let (status, body) = app.cpo(Method::PUT, &path_of(&loc), Some(&loc)).await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .starts_with("evses[0].connectors[0].max_voltage"),
        "{body}"
    );

    // URL and body disagree.
    let loc = example("location_example.json");
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/locations/BE/BEC/OTHER",
            Some(&loc),
        )
        .await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));
    assert!(
        body["status_message"].as_str().unwrap().starts_with("id"),
        "{body}"
    );

    // Not JSON: refused at the transport layer (HTTP 400), as the spec says.
    let (status, body) = app
        .send_raw(Method::PUT, &path_of(&loc), "{\"country_code\": ")
        .await;
    assert_eq!((status, body["status_code"].as_i64()), (400, Some(2001)));
    assert_eq!(app.count("locations").await, 0);

    // Store it (new: 201), then a bad PATCH changes nothing.
    let (status, _) = app.cpo(Method::PUT, &path_of(&loc), Some(&loc)).await;
    assert_eq!(status, 201, "a new location");
    let (status, body) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256",
            Some(&json!({"status": "CHARGING"})),
        )
        .await;
    assert_eq!(
        status, 200,
        "a PATCH needs last_updated (2001 at the OCPI layer)"
    );
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .contains("last_updated")
    );
    let (status, _) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256",
            Some(&json!({"status": "BROKEN", "last_updated": "2019-06-24T12:39:09Z"})),
        )
        .await;
    assert_eq!(status, 200, "refused at the OCPI layer (2001)");
    let (_, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/locations/BE/BEC/LOC1/3256", None)
        .await;
    assert_eq!(body["data"]["status"], "AVAILABLE");

    // Children of an unknown location.
    let evse = example("location_put_example_add_evse.json");
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/locations/BE/BEC/NOPE/3256",
            Some(&evse),
        )
        .await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2003)));
}

#[tokio::test]
async fn objects_under_another_partys_codes_are_refused() {
    let app = app_with_cpo(Backend::Postgres).await;
    let mut loc = example("location_example.json");
    loc["country_code"] = json!("FR");
    loc["party_id"] = json!("OTH");
    let (status, body) = app.cpo(Method::PUT, &path_of(&loc), Some(&loc)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["status_code"], 2000, "{body}");
    assert_eq!(app.count("locations").await, 0);

    let mut cdr = example("cdr_example.json");
    cdr["country_code"] = json!("FR");
    cdr["party_id"] = json!("OTH");
    let (status, body) = app.cpo(Method::POST, "/ocpi/2.2.1/cdrs", Some(&cdr)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(app.count("cdrs").await, 0);
}
