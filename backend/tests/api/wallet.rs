//! Issue 5, e-wallets against a real anvil and PostgreSQL: Sign-In with Ethereum (EIP-4361)
//! with the custodial key and with an external wallet, its refusals (wrong signer, replayed,
//! expired, never-issued or foreign nonce, tampered message), key export to its owner only, and
//! a scan of TRACE-level logs and every response of a full flow for secrets.

use crate::chain::{METER_KEY, OPERATOR_KEY, cdr, chain_app, set_flex, wallet_address, writer};
use crate::helpers::{TestApp, spawn_cpo, token_header};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use evflex_chain::LocalChain;
use evflex_chain::alloy_types::Address;
use evflex_chain::wallet::siwe::SiweMessage;
use evflex_chain::wallet::{MasterSecret, WalletError, keystore};
use reqwest::Method;
use serde_json::{Value, json};

/// The master secret `ChainConfig::for_tests` seals keystores with.
const MASTER: &str = "test master secret, not for production";

/// `POST /api/v1/auth/challenge` for `address`; the EIP-4361 message text.
async fn challenge(app: &TestApp, address: Address) -> String {
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/auth/challenge",
            None,
            Some(&json!({"address": address.to_checksum(None)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

/// `personal_sign` (EIP-191) of `message` with `signer`, as `0x`-hex.
fn sign(signer: &PrivateKeySigner, message: &str) -> String {
    let sig = signer.sign_message_sync(message.as_bytes()).unwrap();
    format!("0x{}", hex::encode(sig.as_bytes()))
}

/// `POST /api/v1/auth/verify`.
async fn verify(app: &TestApp, message: &str, signature: &str) -> (u16, Value) {
    app.send(
        Method::POST,
        "/api/v1/auth/verify",
        None,
        Some(&json!({"message": message, "signature": signature})),
    )
    .await
}

/// Asserts a refused sign-in: 401 whose message contains `why`.
fn assert_refused((status, body): (u16, Value), why: &str) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized", "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains(why), "expected {why:?} in {body}");
}

/// Exports the user's keystore under `password` and opens it: the user's own key.
async fn exported_key(app: &TestApp, token: &str, password: &str) -> (Value, PrivateKeySigner) {
    let (status, ks) = app
        .user(
            token,
            Method::POST,
            "/api/v1/users/me/wallet/export",
            Some(&json!({"password": password})),
        )
        .await;
    assert_eq!(status, 200, "{ks}");
    let signer = keystore::decrypt(&ks.to_string(), password.as_bytes()).unwrap();
    (ks, signer)
}

/// Every custodial key in the database, as lower-case hex without `0x`.
async fn stored_private_keys(app: &TestApp) -> Vec<String> {
    let master = MasterSecret::new(MASTER).unwrap();
    let mut conn = app.state.db.conn().await.unwrap();
    evflex::store::wallets::all(&mut conn)
        .await
        .unwrap()
        .iter()
        .filter_map(|w| w.keystore_json.as_deref())
        .map(|ks| {
            let w = evflex_chain::wallet::open(ks, &master).unwrap();
            hex::encode(w.signer().to_bytes())
        })
        .collect()
}

#[tokio::test]
async fn sign_in_with_ethereum_with_the_custodial_key_and_an_external_wallet() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let app = chain_app(&chain).await;
    let (alice_id, alice_token, _) = app.new_user("alice", true).await;
    let alice_addr = wallet_address(&app, &alice_token).await;
    let (_, alice_key) = exported_key(&app, &alice_token, "correct horse battery").await;
    assert_eq!(alice_key.address(), alice_addr);

    // The challenge follows EIP-4361: this server's domain and URI, the checksummed address,
    // chain id, a 16-character nonce, issued now, expiring in 5 minutes.
    let text = challenge(&app, alice_addr).await;
    let msg: SiweMessage = text.parse().expect("an EIP-4361 message");
    let authority = app.address.trim_start_matches("http://");
    assert!(
        text.starts_with(&format!(
            "{authority} wants you to sign in with your Ethereum account:\n{}\n\n",
            alice_addr.to_checksum(None)
        )),
        "{text}"
    );
    assert_eq!(msg.domain, authority);
    assert_eq!(msg.address, alice_addr);
    assert_eq!(msg.chain_id, 31_337);
    assert!(msg.uri.starts_with(&app.address), "{text}");
    assert_eq!(msg.nonce.len(), 16);
    assert_eq!(msg.issued_at.unix_timestamp(), crate::helpers::T0);
    assert_eq!(
        msg.expiration_time.map(|t| t.unix_timestamp()),
        Some(crate::helpers::T0 + 300)
    );
    assert!(
        text.contains("\nVersion: 1\nChain ID: 31337\nNonce: "),
        "{text}"
    );

    // A wrong signer is refused and does not burn the nonce…
    let mallory = PrivateKeySigner::random();
    assert_refused(
        verify(&app, &text, &sign(&mallory, &text)).await,
        &format!("not by {alice_addr}"),
    );
    // …so the owner then signs in with it: a session token for Alice's account that works on a
    // protected route.
    let sig = sign(&alice_key, &text);
    let (status, body) = verify(&app, &text, &sig).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], alice_id);
    assert_eq!(
        body["address"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        alice_addr
    );
    let session = body["token"].as_str().unwrap().to_owned();
    let (status, me) = app
        .user(&session, Method::GET, "/api/v1/users/me", None)
        .await;
    assert_eq!(
        (status, me["user_id"].as_i64()),
        (200, Some(alice_id)),
        "{me}"
    );
    // A sign-in rotates the session: the token from registration no longer works.
    let (status, _) = app
        .user(&alice_token, Method::GET, "/api/v1/users/me", None)
        .await;
    assert_eq!(status, 401);

    // Replaying the signed message: the nonce is single-use.
    assert_refused(verify(&app, &text, &sig).await, "already used");

    // Tampered messages: the signature no longer recovers the address, or the domain is
    // another site's.
    let text = challenge(&app, alice_addr).await;
    let sig = sign(&alice_key, &text);
    let tampered = text.replace("Sign in to evflex.", "Sign in to evflex and pay 1000 EUR.");
    assert_refused(verify(&app, &tampered, &sig).await, "not by");
    let other_site = text.replacen(authority, "evil.example", 1);
    assert_refused(
        verify(&app, &other_site, &sign(&alice_key, &other_site)).await,
        "domain \"evil.example\"",
    );
    let other_chain = text.replace("Chain ID: 31337", "Chain ID: 1");
    assert_refused(
        verify(&app, &other_chain, &sign(&alice_key, &other_chain)).await,
        "chain 1",
    );
    assert_refused(verify(&app, "hello", &sig).await, "malformed");
    let (status, body) = verify(&app, &text, "0xzz").await;
    assert_eq!(status, 400, "{body}");
    // The untampered message still signs in (the refusals burnt nothing).
    assert_eq!(verify(&app, &text, &sig).await.0, 200);

    // A nonce the server never issued, correctly signed.
    let mut invented = msg.clone();
    invented.nonce = "AAAAAAAAAAAAAAAA".to_owned();
    let invented = invented.to_string();
    assert_refused(
        verify(&app, &invented, &sign(&alice_key, &invented)).await,
        "nonce unknown",
    );

    // A nonce issued to Alice, used by Mallory for her own address.
    let text = challenge(&app, alice_addr).await;
    let mut stolen: SiweMessage = text.parse().unwrap();
    stolen.address = mallory.address();
    let stolen = stolen.to_string();
    assert_refused(
        verify(&app, &stolen, &sign(&mallory, &stolen)).await,
        "nonce unknown",
    );

    // Expired: signed after the 5-minute window.
    let text = challenge(&app, alice_addr).await;
    app.clock.advance(301);
    assert_refused(
        verify(&app, &text, &sign(&alice_key, &text)).await,
        "expired",
    );

    // An external wallet (a key evflex never held) signs in: a new account with that address,
    // no custodial key, a working session.
    let external = PrivateKeySigner::random();
    let text = challenge(&app, external.address()).await;
    let (status, body) = verify(&app, &text, &sign(&external, &text)).await;
    assert_eq!(status, 200, "{body}");
    let ext_id = body["user_id"].as_i64().unwrap();
    assert_ne!(ext_id, alice_id);
    let ext_token = body["token"].as_str().unwrap().to_owned();
    let (status, me) = app
        .user(&ext_token, Method::GET, "/api/v1/users/me", None)
        .await;
    assert_eq!(
        (status, me["user_id"].as_i64()),
        (200, Some(ext_id)),
        "{me}"
    );
    let (status, w) = app
        .user(&ext_token, Method::GET, "/api/v1/users/me/wallet", None)
        .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["custodial"], false);
    assert_eq!(
        w["address"].as_str().unwrap().parse::<Address>().unwrap(),
        external.address()
    );
    // Signing in again links to the same account.
    let text = challenge(&app, external.address()).await;
    let (_, again) = verify(&app, &text, &sign(&external, &text)).await;
    assert_eq!(again["user_id"], ext_id);

    // Protected routes refuse a missing or unknown token.
    let (status, _) = app.send(Method::GET, "/api/v1/users/me", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .user("not-a-session", Method::GET, "/api/v1/users/me", None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn key_export_gives_the_owner_a_standard_keystore_and_nobody_else_anything() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let app = chain_app(&chain).await;
    let (_, alice, _) = app.new_user("alice", true).await;
    let (_, bob, _) = app.new_user("bob", false).await;
    let alice_addr = wallet_address(&app, &alice).await;
    let bob_addr = wallet_address(&app, &bob).await;

    // The owner gets a keystore v3 (scrypt at geth's standard cost, AES-128-CTR) that opens
    // with the password they chose to the key of their wallet address.
    let password = "correct horse battery";
    let (ks, key) = exported_key(&app, &alice, password).await;
    assert_eq!(key.address(), alice_addr);
    assert_eq!(ks["version"], 3);
    assert_eq!(ks["crypto"]["kdf"], "scrypt");
    assert_eq!(ks["crypto"]["kdfparams"]["n"], 262_144);
    assert_eq!(ks["crypto"]["cipher"], "aes-128-ctr");
    assert_eq!(
        keystore::declared_address(&ks.to_string()).unwrap(),
        Some(alice_addr)
    );
    assert!(matches!(
        keystore::decrypt(&ks.to_string(), b"wrong password"),
        Err(WalletError::WrongSecret)
    ));
    // It is re-encrypted: not the stored keystore, nor does it open with the master secret.
    let stored = {
        let mut conn = app.state.db.conn().await.unwrap();
        evflex::store::wallets::by_address(&mut conn, &alice_addr.to_string())
            .await
            .unwrap()
            .unwrap()
            .keystore_json
            .unwrap()
    };
    assert_ne!(
        ks["crypto"]["ciphertext"],
        serde_json::from_str::<Value>(&stored).unwrap()["crypto"]["ciphertext"]
    );
    assert!(keystore::decrypt(&ks.to_string(), MASTER.as_bytes()).is_err());

    // Bob's token exports Bob's wallet, never Alice's (the route takes no user id at all).
    let (_, bob_key) = exported_key(&app, &bob, "another password").await;
    assert_eq!(bob_key.address(), bob_addr);
    assert_ne!(bob_key.address(), alice_addr);

    // No token, an unknown token, an OCPI-style header: 401 and no keystore.
    let body = json!({"password": password});
    for auth in [
        None,
        Some("Bearer not-a-session".to_owned()),
        Some(token_header(&alice)),
    ] {
        let (status, resp) = app
            .send(
                Method::POST,
                "/api/v1/users/me/wallet/export",
                auth.as_deref(),
                Some(&body),
            )
            .await;
        assert_eq!(status, 401, "{auth:?}: {resp}");
        assert!(resp.get("crypto").is_none(), "{resp}");
    }
    // A password too short to protect the file.
    let (status, resp) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/users/me/wallet/export",
            Some(&json!({"password": "short"})),
        )
        .await;
    assert_eq!(status, 400, "{resp}");

    // A wallet evflex never held (signed in with an external key) has nothing to export.
    let external = PrivateKeySigner::random();
    let text = challenge(&app, external.address()).await;
    let (_, signed_in) = verify(&app, &text, &sign(&external, &text)).await;
    let ext = signed_in["token"].as_str().unwrap();
    let (status, resp) = app
        .user(
            ext,
            Method::POST,
            "/api/v1/users/me/wallet/export",
            Some(&body),
        )
        .await;
    assert_eq!(status, 404, "{resp}");

    // No other response carries key material: neither a key nor any keystore.
    let mut others = String::new();
    for token in [&alice, &bob] {
        for path in [
            "/api/v1/users/me",
            "/api/v1/users/me/wallet",
            "/api/v1/users/me/status",
            "/api/v1/users/me/settlements",
        ] {
            let (status, body) = app.user(token, Method::GET, path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            others.push_str(&body.to_string());
        }
    }
    let keys = stored_private_keys(&app).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], hex::encode(key.to_bytes()));
    for k in &keys {
        assert!(!others.contains(k.as_str()), "a private key leaked");
    }
    for marker in ["ciphertext", "kdfparams", "keystore"] {
        assert!(!others.contains(marker), "{marker} in {others}");
    }
}

// ---------------------------------------------------------------------- log scan

mod capture {
    //! A process-wide tracing layer that records every span and event at every level (TRACE
    //! included) emitted on threads named `evflex-logscan*` (the scanning test's own runtime,
    //! workers and blocking pool), so tests running beside it do not pollute it. It says
    //! `Interest::always` for every callsite, so no interest cached before it was installed can
    //! hide an event from it.

    use std::fmt::Write;
    use std::sync::{Mutex, OnceLock};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata, Subscriber};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;

    pub const THREAD: &str = "evflex-logscan";

    static BUFFER: Mutex<String> = Mutex::new(String::new());
    static INSTALLED: OnceLock<bool> = OnceLock::new();

    struct Capture;

    struct Fields<'a>(&'a mut String);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn on_scan_thread() -> bool {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(THREAD))
    }

    fn push(line: String) {
        let mut b = BUFFER.lock().unwrap();
        b.push_str(&line);
        b.push('\n');
    }

    impl<S: Subscriber> Layer<S> for Capture {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::always()
        }
        fn enabled(&self, _: &Metadata<'_>, _: Context<'_, S>) -> bool {
            true
        }
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            if on_scan_thread() {
                let m = attrs.metadata();
                let mut line = format!("{} span {}::{}", m.level(), m.target(), m.name());
                attrs.record(&mut Fields(&mut line));
                push(line);
            }
        }
        fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
            if on_scan_thread() {
                let mut line = "record".to_owned();
                values.record(&mut Fields(&mut line));
                push(line);
            }
        }
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            if on_scan_thread() {
                let m = event.metadata();
                let mut line = format!("{} {}", m.level(), m.target());
                event.record(&mut Fields(&mut line));
                push(line);
            }
        }
    }

    /// Installs the layer (once); `false` if another global subscriber was there first.
    pub fn install() -> bool {
        *INSTALLED.get_or_init(|| {
            tracing_subscriber::registry()
                .with(Capture)
                .try_init()
                .is_ok()
        })
    }

    /// Everything captured so far.
    pub fn text() -> String {
        BUFFER.lock().unwrap().clone()
    }
}

/// A full flow (OCPI handshake, locations, group, users with custodial wallets, smart-charging
/// consent, ticks with chain commits, Sign-In with Ethereum, key export, CDRs settled with the
/// meter key's signature, a top-up, refusals of bad tokens) with every log at TRACE captured:
/// no private key, master secret, OCPI token, session token or export password appears in the
/// logs or in any response.
#[test]
fn no_secret_reaches_the_logs_or_any_response() {
    assert!(
        capture::install(),
        "another tracing subscriber is installed (unset TEST_LOG for this test)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(capture::THREAD)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Run the flow on a worker so the test thread's own name does not matter.
        tokio::spawn(log_scan_flow()).await.unwrap();
    });
}

async fn log_scan_flow() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let mut responses = String::new();
    let mut note = |v: &Value| responses.push_str(&format!("{v}\n"));

    let cpo = spawn_cpo().await;
    let token_c = app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 22_080, &["E1", "E2"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (_, bob, bob_uid) = app.new_user("bob", false).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    app.tick().await;
    let w = writer(&app);
    w.run_until_idle(10).await.unwrap();
    app.clock.advance(900);
    app.tick().await;
    w.run_until_idle(10).await.unwrap();

    // Sign-in with the exported custodial key; refusals of a forged and a replayed sign-in.
    let password = "export password 7f3a9c";
    let (ks, alice_key) = exported_key(&app, &alice, password).await;
    note(&ks);
    let alice_addr = alice_key.address();
    let text = challenge(&app, alice_addr).await;
    let sig = sign(&alice_key, &text);
    let (status, signed_in) = verify(&app, &text, &sig).await;
    assert_eq!(status, 200, "{signed_in}");
    note(&signed_in);
    let siwe_token = signed_in["token"].as_str().unwrap().to_owned();
    for (m, s) in [
        (&text, sig.clone()),
        (&text, sign(&PrivateKeySigner::random(), &text)),
    ] {
        let (status, body) = verify(&app, m, &s).await;
        assert_eq!(status, 401);
        note(&body);
    }

    // Settlements signed by the meter key: Bob is funded, Alice first awaits funds.
    set_flex(&app, "S1", 2_000).await;
    let (status, body) = app
        .user(
            &bob,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 50.0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    note(&body);
    for (id, s, e, t) in [("C1", "S1", "E1", "ALICE"), ("C2", "S2", "E2", "BOB")] {
        let (status, body) = app
            .cpo(
                Method::POST,
                "/ocpi/2.2.1/cdrs",
                Some(&cdr(id, s, e, t, 8.0)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        note(&body);
    }
    let r = w.run_until_idle(10).await.unwrap();
    assert_eq!(r.awaiting_funds, 1, "{r:?}");
    let (status, body) = app
        .user(
            &siwe_token,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 20.0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    note(&body);
    w.run_until_idle(10).await.unwrap();
    for token in [&siwe_token, &bob] {
        for path in [
            "/api/v1/users/me",
            "/api/v1/users/me/wallet",
            "/api/v1/users/me/status",
            "/api/v1/users/me/settlements",
        ] {
            let (status, body) = app.user(token, Method::GET, path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            note(&body);
        }
    }
    let (_, settled) = app
        .user(
            &siwe_token,
            Method::GET,
            "/api/v1/users/me/settlements",
            None,
        )
        .await;
    assert_eq!(settled[0]["status"], "settled", "{settled}");
    let (status, body) = app.cpo(Method::GET, "/api/v1/cockpit/groups", None).await;
    assert_eq!(status, 200, "{body}");
    note(&body);
    // (GET /ocpi/2.2.1/credentials answers token C to its holder, as OCPI wants: not noted.)
    let (status, _) = app.cpo(Method::GET, "/ocpi/2.2.1/credentials", None).await;
    assert_eq!(status, 200);
    for path in ["/api/v1/audit/commits", "/api/v1/audit/settlements"] {
        let (_, body) = app.send(Method::GET, path, None, None).await;
        note(&body);
    }

    // Bad credentials everywhere: the refusals must not echo them.
    let wrong_ocpi = format!("{token_c}x");
    let (_, body) = app
        .send(
            Method::GET,
            "/ocpi/2.2.1/credentials",
            Some(&token_header(&wrong_ocpi)),
            None,
        )
        .await;
    note(&body);
    let (_, body) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header("token-a")),
            Some(
                &json!({"token": "cpo-token-b", "url": "http://127.0.0.1:1/ocpi/versions",
                         "roles": []}),
            ),
        )
        .await;
    note(&body);
    let (_, body) = app
        .user(&format!("{alice}x"), Method::GET, "/api/v1/users/me", None)
        .await;
    note(&body);
    let (_, body) = app
        .user(
            &siwe_token,
            Method::POST,
            "/api/v1/users/me/wallet/export",
            Some(&json!({"password": "short"})),
        )
        .await;
    note(&body);

    // The secrets.
    let mut secrets: Vec<(String, String)> = Vec::new();
    for k in stored_private_keys(&app).await {
        secrets.push(("a user's private key".into(), k));
    }
    assert_eq!(secrets.len(), 2, "both users have custodial keys");
    for (what, k) in [("operator key", OPERATOR_KEY), ("meter key", METER_KEY)] {
        secrets.push((what.into(), k.trim_start_matches("0x").to_owned()));
    }
    secrets.push(("master secret".into(), MASTER.to_owned()));
    for (what, t) in [
        ("OCPI token A", "token-a".to_owned()),
        ("OCPI token B", "cpo-token-b".to_owned()),
        ("OCPI token C", token_c.clone()),
    ] {
        secrets.push((what.into(), t.clone()));
        let b64 = token_header(&t).trim_start_matches("Token ").to_owned();
        secrets.push((format!("{what} (base64)"), b64));
    }
    for (what, t) in [
        ("alice's session token", &alice),
        ("bob's session token", &bob),
        ("the sign-in session token", &siwe_token),
    ] {
        secrets.push((what.into(), t.clone()));
    }
    secrets.push(("the export password".into(), password.to_owned()));

    // Give spans and the writer a moment to flush, then scan.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = capture::text();
    let (has_trace, has_writer) = (logs.contains("TRACE"), logs.contains("chain writer pass"));
    assert!(
        logs.len() > 10_000 && has_trace && has_writer,
        "the capture saw the flow ({} bytes, TRACE: {has_trace}, writer: {has_writer}): {}",
        logs.len(),
        &logs[..logs.len().min(2_000)]
    );
    println!(
        "captured {} lines ({} bytes) of logs at TRACE, {} bytes of responses; {} secrets checked",
        logs.lines().count(),
        logs.len(),
        responses.len(),
        secrets.len()
    );
    let lower_logs = logs.to_ascii_lowercase();
    let lower_responses = responses.to_ascii_lowercase();
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        let s = secret.to_ascii_lowercase();
        if let Some(at) = lower_logs.find(&s) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            leaks.push(format!(
                "{what} in the logs: {}",
                &logs[line_start..line_end.min(line_start + 400)]
            ));
        }
        // The keystore (ciphertext) and the sign-in answer legitimately carry no secret either;
        // the only token a response may carry is the one it hands out.
        let allowed_in_responses = what == "the sign-in session token";
        if !allowed_in_responses && lower_responses.contains(&s) {
            leaks.push(format!("{what} in a response"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

async fn set_limit(app: &TestApp, token: &str, limit: Value) -> (u16, Value) {
    app.user(
        token,
        Method::PUT,
        "/api/v1/users/me/spending-limit",
        Some(&limit),
    )
    .await
}

/// A user's spending limit is the contract's to enforce: a settlement above the price cap or
/// past the allowance waits (`over_limit`) and goes through once the user raises the limit;
/// each settlement uses up the allowance.
#[tokio::test]
async fn a_spending_limit_holds_settlements_back_until_the_user_raises_it() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 22_080, &["E1", "E2"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let w = writer(&app);
    let top_up = json!({"amount_eur": 50.0});
    let (status, body) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&top_up),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Malformed limits are refused and change nothing.
    for bad in [
        json!({"max_price_eur_per_kwh": -1.0}),
        json!({"max_price_eur_per_kwh": 11.0}),
        json!({"allowance_eur": 2e6}),
        json!({"allowance": 5}),
    ] {
        let (status, body) = set_limit(&app, &alice, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert!(app.outbox("spending_limit").await.is_empty());

    // At most 0.20 €/kWh, 10 € in all: the CPO's 0.30 €/kWh is above it.
    let limit = json!({"max_price_eur_per_kwh": 0.20, "allowance_eur": 10.0});
    let (status, body) = set_limit(&app, &alice, limit).await;
    assert_eq!(status, 202, "{body}");
    w.run_until_idle(10).await.unwrap();
    let (_, wallet) = app
        .user(&alice, Method::GET, "/api/v1/users/me/wallet", None)
        .await;
    assert_eq!(
        wallet["spending_limit"],
        json!({"max_price_micro_eur_per_kwh": 200_000, "allowance_micro": 10_000_000}),
        "{wallet}"
    );

    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    let (status, body) = app
        .cpo(
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            Some(&cdr("C1", "S1", "E1", &alice_uid, 8.0)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    w.run_until_idle(10).await.unwrap();
    let (_, bills) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(bills[0]["status"], "over your spending limit", "{bills}");
    let (_, before) = app
        .user(&alice, Method::GET, "/api/v1/users/me/wallet", None)
        .await;

    // Alice lifts the price cap and keeps the 10 € allowance: the 2.40 € bill goes through
    // and uses up that much of it.
    let (status, body) = set_limit(&app, &alice, json!({"allowance_eur": 10.0})).await;
    assert_eq!(status, 202, "{body}");
    w.run_until_idle(10).await.unwrap();
    w.run_until_idle(10).await.unwrap();
    let (_, bills) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(bills[0]["status"], "settled", "{bills}");
    let (_, after) = app
        .user(&alice, Method::GET, "/api/v1/users/me/wallet", None)
        .await;
    let paid = before["balances"]["payment_token_micro"].as_i64().unwrap()
        - after["balances"]["payment_token_micro"].as_i64().unwrap();
    assert_eq!(paid, 2_400_000, "8 kWh at 0.30 €/kWh");
    assert_eq!(
        after["spending_limit"]["allowance_micro"],
        json!(10_000_000 - paid),
        "{after}"
    );
}
