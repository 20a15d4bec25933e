//! E-wallets without a chain: keystores, secrecy, Sign-In with Ethereum.

use std::process::Command;

use evflex_chain::alloy_types::PrivateKeySigner;
use evflex_chain::repo_root;
use evflex_chain::wallet::siwe::{SiweError, SiweExpectation, SiweMessage, verify_sign_in};
use evflex_chain::wallet::{self, EncryptedWallet, MasterSecret, WalletError, keystore};
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

const MASTER: &str = "correct horse battery staple 42";

fn master() -> MasterSecret {
    MasterSecret::new(MASTER).unwrap()
}

fn key_hex(signer: &PrivateKeySigner) -> String {
    evflex_chain::alloy_types::B256::from(signer.to_bytes()).to_string()
}

#[test]
fn generate_open_roundtrip_and_wrong_secret() {
    let w = wallet::generate(&master()).unwrap();
    let opened = wallet::open_wallet(&w, &master()).unwrap();
    assert_eq!(opened.address(), w.address);
    let json: serde_json::Value = serde_json::from_str(&w.keystore_json).unwrap();
    assert_eq!(json["version"], 3);
    assert_eq!(json["crypto"]["kdf"], "scrypt");
    assert_eq!(json["crypto"]["cipher"], "aes-128-ctr");
    // the plaintext key is nowhere in the stored JSON
    let key = key_hex(opened.signer());
    assert!(!w.keystore_json.contains(&key[2..]));

    let wrong = MasterSecret::new("another master secret value").unwrap();
    assert!(matches!(
        wallet::open(&w.keystore_json, &wrong),
        Err(WalletError::WrongSecret)
    ));

    // two wallets never share a key
    let w2 = wallet::generate(&master()).unwrap();
    assert_ne!(w.address, w2.address);

    // a keystore swapped under another address is refused
    let swapped = EncryptedWallet {
        address: w2.address,
        keystore_json: w.keystore_json.clone(),
    };
    assert!(matches!(
        wallet::open_wallet(&swapped, &master()),
        Err(WalletError::AddressMismatch { .. })
    ));
}

#[test]
fn tampered_keystore_is_refused() {
    let w = wallet::generate(&master()).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&w.keystore_json).unwrap();
    let ct = json["crypto"]["ciphertext"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if ct.starts_with('0') { "1" } else { "0" },
        &ct[1..]
    );
    json["crypto"]["ciphertext"] = flipped.into();
    assert!(matches!(
        wallet::open(&json.to_string(), &master()),
        Err(WalletError::WrongSecret)
    ));
    assert!(matches!(
        wallet::open("{}", &master()),
        Err(WalletError::Keystore(_))
    ));
    json["crypto"]["kdfparams"]["n"] = (1u64 << 30).into();
    assert!(matches!(
        wallet::open(&json.to_string(), &master()),
        Err(WalletError::Keystore(_))
    ));
}

#[test]
fn secrets_never_print() {
    let m = master();
    assert_eq!(format!("{m}"), "[REDACTED]");
    assert!(!format!("{m:?}").contains(MASTER));
    assert!(format!("{m:?}").contains("REDACTED"));

    let w = wallet::generate(&m).unwrap();
    let opened = wallet::open_wallet(&w, &m).unwrap();
    let key = key_hex(opened.signer());
    let key_no_prefix = &key[2..];
    for printed in [
        format!("{opened:?}"),
        format!("{:?}", opened.signer()),
        format!("{w:?}"),
        format!("{:#?}", opened),
    ] {
        assert!(!printed.contains(key_no_prefix), "key leaked in {printed}");
        assert!(!printed.contains(MASTER));
    }
    assert!(
        !format!("{w:?}").contains(&w.keystore_json),
        "keystore JSON should stay out of Debug"
    );

    // errors carry neither the key nor the secret
    let wrong = MasterSecret::new("wrong wrong wrong wrong").unwrap();
    let err = wallet::open(&w.keystore_json, &wrong).unwrap_err();
    for printed in [err.to_string(), format!("{err:?}")] {
        assert!(
            !printed.contains(key_no_prefix) && !printed.contains("wrong wrong"),
            "{printed}"
        );
    }
    assert!(MasterSecret::new("short").is_err());
    let short_err = MasterSecret::new("short").unwrap_err().to_string();
    assert!(!short_err.contains("short\""), "{short_err}");
}

#[test]
fn export_is_a_standard_keystore_foundry_reads() {
    let w = wallet::generate(&master()).unwrap();
    let password = SecretString::from("user export password".to_owned());
    let exported = wallet::export_keystore(&w, &master(), &password).unwrap();
    let json: serde_json::Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(json["crypto"]["kdfparams"]["n"], 1u64 << 18);
    let back = keystore::decrypt(&exported, b"user export password").unwrap();
    assert_eq!(back.address(), w.address);

    // Foundry's `cast` (eth-keystore) decrypts it to the same key.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exported"), &exported).unwrap();
    let out = Command::new(repo_root().join("node_modules/.bin/cast"))
        .args(["wallet", "decrypt-keystore", "exported", "-k"])
        .arg(dir.path())
        .args(["--unsafe-password", "user export password"])
        .output()
        .expect("run cast");
    assert!(
        out.status.success(),
        "cast failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&key_hex(&back)[2..]),
        "cast printed another key"
    );
}

#[test]
fn opens_a_keystore_foundry_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(repo_root().join("node_modules/.bin/cast"))
        .args(["wallet", "new"])
        .arg(dir.path())
        .args(["foundry-key", "--unsafe-password", "foundry pw"])
        .output()
        .expect("run cast");
    assert!(
        out.status.success(),
        "cast failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(dir.path().join("foundry-key")).unwrap();
    let signer = keystore::decrypt(&json, b"foundry pw").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&signer.address().to_checksum(None)),
        "{stdout}"
    );
    assert!(matches!(
        keystore::decrypt(&json, b"nope"),
        Err(WalletError::WrongSecret)
    ));
}

fn siwe_fixture() -> (wallet::Wallet, SiweMessage, OffsetDateTime) {
    let w = wallet::open_wallet(&wallet::generate(&master()).unwrap(), &master()).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let msg = SiweMessage::challenge(
        "app.evflex.example",
        "https://app.evflex.example/login",
        31337,
        w.address(),
        now,
        Duration::minutes(5),
    )
    .unwrap();
    (w, msg, now)
}

#[test]
fn siwe_message_format_and_roundtrip() {
    let (w, msg, _) = siwe_fixture();
    let text = msg.to_string();
    let expected_head = format!(
        "app.evflex.example wants you to sign in with your Ethereum account:\n{}\n\nSign in to evflex.\n\nURI: https://app.evflex.example/login\nVersion: 1\nChain ID: 31337\nNonce: {}\nIssued At: 2026-09-21T",
        w.address().to_checksum(None),
        msg.nonce
    );
    assert!(text.starts_with(&expected_head), "{text}");
    assert!(text.contains("\nExpiration Time: 2026-09-21T"), "{text}");
    assert_eq!(text.parse::<SiweMessage>().unwrap(), msg);
    let mut no_statement = msg.clone();
    no_statement.statement = None;
    assert_eq!(
        no_statement.to_string().parse::<SiweMessage>().unwrap(),
        no_statement
    );
    assert_eq!(msg.nonce.len(), 16);
    assert!(msg.nonce.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn siwe_verify_accepts_and_rejects() {
    let (w, msg, now) = siwe_fixture();
    let sig = msg.sign(&w).unwrap();
    let text = msg.to_string();
    let expect = SiweExpectation {
        domain: "app.evflex.example",
        chain_id: 31337,
        now: now + Duration::minutes(1),
    };

    // the nonce store is the caller's: a set of issued nonces, consumed on use
    let mut issued = std::collections::HashSet::from([msg.nonce.clone()]);
    let ok = verify_sign_in(&text, &sig, &expect, |n| issued.remove(n)).unwrap();
    assert_eq!(ok.address, w.address());
    // reused nonce
    assert_eq!(
        verify_sign_in(&text, &sig, &expect, |n| issued.remove(n)),
        Err(SiweError::NonceReused)
    );

    let fresh = |_: &str| true;
    // wrong domain
    let other = SiweExpectation {
        domain: "evil.example",
        ..expect.clone()
    };
    assert!(matches!(
        verify_sign_in(&text, &sig, &other, fresh),
        Err(SiweError::WrongDomain { .. })
    ));
    // wrong chain
    let other = SiweExpectation {
        chain_id: 1,
        ..expect.clone()
    };
    assert!(matches!(
        verify_sign_in(&text, &sig, &other, fresh),
        Err(SiweError::WrongChain { .. })
    ));
    // expired
    let late = SiweExpectation {
        now: now + Duration::minutes(6),
        ..expect.clone()
    };
    assert!(matches!(
        verify_sign_in(&text, &sig, &late, fresh),
        Err(SiweError::Expired(_))
    ));
    // wrong address: someone else signs a message naming this wallet
    let mallory = wallet::open_wallet(&wallet::generate(&master()).unwrap(), &master()).unwrap();
    let forged = msg.sign(&mallory).unwrap();
    assert!(matches!(
        verify_sign_in(&text, &forged, &expect, fresh),
        Err(SiweError::WrongAddress { recovered, .. }) if recovered == mallory.address()
    ));
    // tampered message (signature no longer recovers the address)
    let tampered = text.replace("Sign in to evflex.", "Sign in to evflex!");
    assert!(matches!(
        verify_sign_in(&tampered, &sig, &expect, fresh),
        Err(SiweError::WrongAddress { .. })
    ));
    // garbage
    assert!(matches!(
        verify_sign_in("hello", &sig, &expect, fresh),
        Err(SiweError::Malformed(_))
    ));
    assert!(matches!(
        verify_sign_in(&text, &sig[..64], &expect, fresh),
        Err(SiweError::InvalidSignature)
    ));
    // a refused message does not consume the nonce
    let mut issued = std::collections::HashSet::from([msg.nonce.clone()]);
    let _ = verify_sign_in(&text, &sig, &late, |n| issued.remove(n));
    assert!(issued.contains(&msg.nonce));
}
