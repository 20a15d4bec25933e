//! `evflex parties`: onboarding CPOs at run time, in either direction, and taking one off.
//!
//! The commands work on the database in `DATABASE_URL`, also while `evflex serve` runs on it:
//! the service reads parties and tokens from the database (a revoked token stops working
//! within its 10-second token cache).

use anyhow::Context;
use evflex::ingest::ocpi::credentials::{self, Identity};
use evflex::store::{Db, parties};

/// The database (as `evflex serve` takes it).
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Database URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://evflex.sqlite?mode=rwc"
    )]
    pub database_url: String,
}

/// `evflex parties …`.
#[derive(Debug, clap::Subcommand)]
pub enum PartiesCommand {
    /// A new registration token (token A) a CPO uses for its credentials POST to evflex;
    /// printed alone on the last line of stdout.
    CreateTokenA(DbArgs),
    /// Every party: row id, party codes, name, status, OCPI version and versions URL.
    List(DbArgs),
    /// Unregisters a party: its tokens stop working and its party codes are free again.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// The party's row id (`evflex parties list`).
        id: i64,
    },
    /// evflex starts the handshake with a CPO that gave it a token A.
    Register {
        #[command(flatten)]
        db: DbArgs,
        /// The CPO's OCPI versions URL.
        #[arg(long)]
        versions_url: String,
        /// The token A the CPO issued to evflex.
        #[arg(long, env = "EVFLEX_CPO_TOKEN_A", hide_env_values = true)]
        token_a: String,
        /// evflex's public base URL (its versions URL is `{public_url}/ocpi/versions`); by
        /// default that of an `evflex serve` on its default listen address.
        #[arg(
            long,
            env = "EVFLEX_PUBLIC_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        public_url: String,
        /// evflex's OCPI country code.
        #[arg(long, env = "EVFLEX_OCPI_COUNTRY_CODE", default_value = "NL")]
        country_code: String,
        /// evflex's OCPI party id.
        #[arg(long, env = "EVFLEX_OCPI_PARTY_ID", default_value = "EVF")]
        party_id: String,
        /// Allow the CPO's URLs to be private, loopback or link-local addresses.
        #[arg(long, env = "EVFLEX_ALLOW_PRIVATE_URLS", action = clap::ArgAction::SetTrue,
            value_parser = clap::builder::BoolishValueParser::new())]
        allow_private_urls: bool,
    },
}

async fn open(db: &DbArgs) -> anyhow::Result<Db> {
    let db = Db::connect(&db.database_url, 1)
        .await
        .context("opening the database")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

/// Runs a `parties` command.
pub fn run(command: PartiesCommand) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async move {
        let now = evflex::domain::unix_now();
        match command {
            PartiesCommand::CreateTokenA(db) => {
                let db = open(&db).await?;
                let token = credentials::new_token();
                let mut conn = db.conn().await?;
                parties::add_registration_token(&mut conn, &token, now).await?;
                println!(
                    "token A created: hand it to the CPO with evflex's versions URL; one \
                     credentials POST uses it up"
                );
                println!("{token}");
            }
            PartiesCommand::List(db) => {
                let db = open(&db).await?;
                let mut conn = db.conn().await?;
                println!(
                    "{:>4}  {:<24} {:<24} {:<13} {:<6} versions URL",
                    "id", "codes", "name", "status", "ocpi"
                );
                for p in parties::list_all(&mut conn).await? {
                    let codes: Vec<String> = p
                        .codes()
                        .iter()
                        .map(|(cc, pid)| format!("{cc}*{pid}"))
                        .collect();
                    println!(
                        "{:>4}  {:<24} {:<24} {:<13} {:<6} {}",
                        p.id,
                        codes.join(","),
                        p.name,
                        p.status,
                        p.version.as_deref().unwrap_or("-"),
                        p.versions_url
                    );
                }
            }
            PartiesCommand::Revoke { db, id } => {
                let db = open(&db).await?;
                let mut conn = db.conn().await?;
                let party = parties::get_party(&mut conn, id)
                    .await?
                    .with_context(|| format!("no party {id}"))?;
                parties::unregister_party(&mut conn, id, now).await?;
                println!(
                    "party {id} ({}*{}) unregistered",
                    party.country_code, party.party_id
                );
            }
            PartiesCommand::Register {
                db,
                versions_url,
                token_a,
                public_url,
                country_code,
                party_id,
                allow_private_urls,
            } => {
                let db = open(&db).await?;
                let http = evflex::outbound::Outbound::new(allow_private_urls)?;
                let me = Identity {
                    versions_url: format!("{}/ocpi/versions", public_url.trim_end_matches('/')),
                    country_code,
                    party_id,
                    name: "evflex".to_owned(),
                };
                let id = credentials::register_with(&db, &http, &me, &versions_url, &token_a, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("party {id} registered");
            }
        }
        Ok(())
    })
}
