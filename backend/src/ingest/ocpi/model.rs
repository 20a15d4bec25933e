//! OCPI 2.2.1 objects evflex receives and sends, named as the specification names them.
//!
//! Only the fields evflex computes with are typed; the rest of every object is kept as received
//! (JSON) by the store. Optional-in-practice fields that the official examples leave out (e.g. a
//! connector's `power_type` in `location_put_example_add_evse.json`) are `Option`.
//!
//! No crate offers these types for Rust 1.95 (`ocpi-kit` needs 1.96; `rust-ocpp` is OCPP only
//! and would pull `jsonschema`/`validator` for three meter-value enums), so they are ours.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::domain::{format_rfc3339, parse_rfc3339};

/// OCPI `DateTime`: RFC 3339, UTC when no offset is given; held as Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub i64);

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text)
            .map(DateTime)
            .ok_or_else(|| de::Error::custom(format!("invalid DateTime {text:?} (RFC 3339)")))
    }
}

impl Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(self.0))
    }
}

/// OCPI `GeoLocation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoLocation {
    /// Latitude in decimal degrees (string, as OCPI sends it).
    pub latitude: String,
    /// Longitude in decimal degrees.
    pub longitude: String,
}

/// OCPI `Location` (the fields evflex uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Location {
    /// ISO 3166 alpha-2 country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// Location id.
    pub id: String,
    /// Whether the location may be published.
    pub publish: bool,
    /// Display name.
    pub name: Option<String>,
    /// Street and number.
    pub address: String,
    /// City.
    pub city: String,
    /// ISO 3166 alpha-3 country code.
    pub country: String,
    /// Coordinates.
    pub coordinates: GeoLocation,
    /// EVSEs.
    pub evses: Option<Vec<Evse>>,
    /// IANA time zone.
    pub time_zone: String,
    /// Last change.
    pub last_updated: DateTime,
}

/// OCPI `Status` of an EVSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvseStatus {
    /// Free.
    #[serde(rename = "AVAILABLE")]
    Available,
    /// Blocked (e.g. a parked car).
    #[serde(rename = "BLOCKED")]
    Blocked,
    /// In use.
    #[serde(rename = "CHARGING")]
    Charging,
    /// Temporarily unavailable.
    #[serde(rename = "INOPERATIVE")]
    Inoperative,
    /// Broken.
    #[serde(rename = "OUTOFORDER")]
    OutOfOrder,
    /// Planned.
    #[serde(rename = "PLANNED")]
    Planned,
    /// Removed.
    #[serde(rename = "REMOVED")]
    Removed,
    /// Reserved.
    #[serde(rename = "RESERVED")]
    Reserved,
    /// Unknown.
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl EvseStatus {
    /// The OCPI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Blocked => "BLOCKED",
            Self::Charging => "CHARGING",
            Self::Inoperative => "INOPERATIVE",
            Self::OutOfOrder => "OUTOFORDER",
            Self::Planned => "PLANNED",
            Self::Removed => "REMOVED",
            Self::Reserved => "RESERVED",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// OCPI `EVSE` (the fields evflex uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Evse {
    /// Uid, unique within the CPO.
    pub uid: crate::domain::EvseUid,
    /// eMI3 EVSE id.
    pub evse_id: Option<String>,
    /// Status.
    pub status: EvseStatus,
    /// Connectors.
    pub connectors: Vec<Connector>,
    /// Last change.
    pub last_updated: DateTime,
}

/// OCPI `PowerType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerType {
    /// AC single phase.
    #[serde(rename = "AC_1_PHASE")]
    Ac1Phase,
    /// AC two phases.
    #[serde(rename = "AC_2_PHASE")]
    Ac2Phase,
    /// AC two phases, split.
    #[serde(rename = "AC_2_PHASE_SPLIT")]
    Ac2PhaseSplit,
    /// AC three phases.
    #[serde(rename = "AC_3_PHASE")]
    Ac3Phase,
    /// Direct current.
    #[serde(rename = "DC")]
    Dc,
}

impl PowerType {
    /// The OCPI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ac1Phase => "AC_1_PHASE",
            Self::Ac2Phase => "AC_2_PHASE",
            Self::Ac2PhaseSplit => "AC_2_PHASE_SPLIT",
            Self::Ac3Phase => "AC_3_PHASE",
            Self::Dc => "DC",
        }
    }

    /// Phases carrying power (DC counts as one).
    pub fn phases(self) -> i64 {
        match self {
            Self::Ac1Phase | Self::Dc => 1,
            Self::Ac2Phase | Self::Ac2PhaseSplit => 2,
            Self::Ac3Phase => 3,
        }
    }
}

/// OCPI `ConnectorFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectorFormat {
    /// A socket the driver plugs a cable into.
    #[serde(rename = "SOCKET")]
    Socket,
    /// A cable attached to the charge point.
    #[serde(rename = "CABLE")]
    Cable,
}

impl ConnectorFormat {
    /// The OCPI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Socket => "SOCKET",
            Self::Cable => "CABLE",
        }
    }
}

/// OCPI `Connector` (the fields evflex uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Connector {
    /// Connector id within the EVSE.
    pub id: String,
    /// `ConnectorType` (`IEC_62196_T2`, `CHADEMO`, …).
    pub standard: String,
    /// Socket or cable.
    pub format: ConnectorFormat,
    /// Power type.
    pub power_type: Option<PowerType>,
    /// Maximum voltage (V; line to neutral for AC 3-phase).
    pub max_voltage: Option<i64>,
    /// Maximum current per phase (A).
    pub max_amperage: Option<i64>,
    /// Maximum power (W).
    pub max_electric_power: Option<i64>,
    /// Last change.
    pub last_updated: Option<DateTime>,
}

impl Connector {
    /// The connector's power: `max_electric_power`, else voltage × current × phases.
    pub fn rated_power_w(&self) -> Option<i64> {
        self.max_electric_power.or_else(|| {
            let phases = self.power_type.map_or(1, PowerType::phases);
            Some(
                crate::domain::Watts::from_electrical(
                    self.max_voltage?,
                    self.max_amperage?,
                    phases,
                )
                .0,
            )
        })
    }
}

/// OCPI `SessionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionStatus {
    /// Charging or ready to charge.
    #[serde(rename = "ACTIVE")]
    Active,
    /// Finished.
    #[serde(rename = "COMPLETED")]
    Completed,
    /// Invalid.
    #[serde(rename = "INVALID")]
    Invalid,
    /// Accepted, not yet started.
    #[serde(rename = "PENDING")]
    Pending,
    /// A reservation.
    #[serde(rename = "RESERVATION")]
    Reservation,
}

impl SessionStatus {
    /// The OCPI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Completed => "COMPLETED",
            Self::Invalid => "INVALID",
            Self::Pending => "PENDING",
            Self::Reservation => "RESERVATION",
        }
    }
}

/// OCPI `AuthMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMethod {
    /// Authorised by the eMSP in real time.
    AuthRequest,
    /// Started by a command.
    Command,
    /// Whitelisted token.
    Whitelist,
}

/// OCPI `TokenType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenType {
    /// One-time ad-hoc user.
    AdHocUser,
    /// App user.
    AppUser,
    /// An eMobility Account Identifier used as the token (ISO 15118 Plug & Charge; OCPI 2.3.0).
    Emaid,
    /// Other.
    Other,
    /// RFID card.
    Rfid,
}

/// OCPI `CdrToken`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CdrToken {
    /// Token uid.
    pub uid: String,
    /// Token type.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// Contract id.
    pub contract_id: String,
}

/// OCPI `CdrDimensionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CdrDimensionType {
    /// Average current (A).
    Current,
    /// Energy (kWh).
    Energy,
    /// Energy exported (kWh).
    EnergyExport,
    /// Energy imported (kWh).
    EnergyImport,
    /// Maximum current (A).
    MaxCurrent,
    /// Minimum current (A).
    MinCurrent,
    /// Maximum power (kW).
    MaxPower,
    /// Minimum power (kW).
    MinPower,
    /// Parking time (h).
    ParkingTime,
    /// Average power (kW).
    Power,
    /// Reservation time (h).
    ReservationTime,
    /// State of charge (%).
    StateOfCharge,
    /// Charging time (h).
    Time,
}

/// OCPI `CdrDimension`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CdrDimension {
    /// Dimension.
    #[serde(rename = "type")]
    pub dimension_type: CdrDimensionType,
    /// Volume.
    pub volume: f64,
}

/// OCPI `ChargingPeriod`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChargingPeriod {
    /// Start of the period.
    pub start_date_time: DateTime,
    /// Values in the period.
    pub dimensions: Vec<CdrDimension>,
    /// Tariff that applies.
    pub tariff_id: Option<String>,
}

/// OCPI `Price`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Amount excluding VAT.
    pub excl_vat: f64,
    /// Amount including VAT.
    pub incl_vat: Option<f64>,
}

/// OCPI `Session` (the fields evflex uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Session {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// Session id.
    pub id: String,
    /// Start.
    pub start_date_time: DateTime,
    /// End, once ended.
    pub end_date_time: Option<DateTime>,
    /// Energy charged so far (kWh).
    pub kwh: f64,
    /// The token used.
    pub cdr_token: CdrToken,
    /// How it was authorised.
    pub auth_method: AuthMethod,
    /// Location id.
    pub location_id: String,
    /// EVSE uid.
    pub evse_uid: crate::domain::EvseUid,
    /// Connector id.
    pub connector_id: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Charging periods.
    pub charging_periods: Option<Vec<ChargingPeriod>>,
    /// Cost so far.
    pub total_cost: Option<Price>,
    /// Status.
    pub status: SessionStatus,
    /// Last change.
    pub last_updated: DateTime,
}

/// A PATCH on a session: every field optional but `last_updated`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionPatch {
    /// New end.
    pub end_date_time: Option<DateTime>,
    /// New energy (kWh).
    pub kwh: Option<f64>,
    /// New charging periods.
    pub charging_periods: Option<Vec<ChargingPeriod>>,
    /// New cost.
    pub total_cost: Option<Price>,
    /// New status.
    pub status: Option<SessionStatus>,
    /// Last change (required).
    pub last_updated: DateTime,
}

/// OCPI `CdrLocation` (the fields evflex uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CdrLocation {
    /// Location id.
    pub id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// eMI3 EVSE id.
    pub evse_id: String,
    /// Connector id.
    pub connector_id: String,
}

/// OCPI `CDR` (the fields evflex uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cdr {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// CDR id.
    pub id: String,
    /// Start.
    pub start_date_time: DateTime,
    /// End.
    pub end_date_time: DateTime,
    /// Session id.
    pub session_id: Option<String>,
    /// The token used.
    pub cdr_token: CdrToken,
    /// How it was authorised.
    pub auth_method: AuthMethod,
    /// Where.
    pub cdr_location: CdrLocation,
    /// ISO 4217 currency.
    pub currency: String,
    /// Charging periods.
    pub charging_periods: Vec<ChargingPeriod>,
    /// The tariffs relevant to this CDR, as they were at the start of the session.
    #[serde(default)]
    pub tariffs: Vec<Tariff>,
    /// Total cost. Required by OCPI 2.2.1, but some CPOs leave it out (they leave the pricing
    /// to the eMSP): then billing prices the CDR from its tariff (`billing`, price sources).
    pub total_cost: Option<Price>,
    /// Total energy (kWh).
    pub total_energy: f64,
    /// Total time (h).
    pub total_time: f64,
    /// Time not charging (h), when the CPO says.
    pub total_parking_time: Option<f64>,
    /// Last change.
    pub last_updated: DateTime,
}

/// OCPI `TariffDimensionType`: what a price component prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TariffDimensionType {
    /// Energy, price per kWh, `step_size` in Wh.
    Energy,
    /// A fee per session, no unit.
    Flat,
    /// Time not charging, price per hour, `step_size` in seconds.
    ParkingTime,
    /// Time charging, price per hour, `step_size` in seconds.
    Time,
}

/// OCPI `PriceComponent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceComponent {
    /// The dimension priced.
    #[serde(rename = "type")]
    pub dimension: TariffDimensionType,
    /// Price per unit, excluding VAT.
    pub price: f64,
    /// VAT percentage; absent means no VAT applies (not the same as 0 %).
    pub vat: Option<f64>,
    /// Billed in blocks of this many units (Wh or s; 1 for `FLAT`).
    pub step_size: i64,
}

/// OCPI `DayOfWeek`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DayOfWeek {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// OCPI `ReservationRestrictionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationRestrictionType {
    /// Costs of a reservation.
    Reservation,
    /// Costs of a reservation that expires.
    ReservationExpires,
}

/// OCPI `TariffRestrictions`: when a tariff element is active (all set fields must match).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TariffRestrictions {
    /// Local time of day from which it applies (`HH:MM`).
    pub start_time: Option<String>,
    /// Local time of day until which it applies (`HH:MM`; before `start_time` wraps past
    /// midnight; `00:00` is the end of the day).
    pub end_time: Option<String>,
    /// Local date from which it applies (`YYYY-MM-DD`, inclusive).
    pub start_date: Option<String>,
    /// Local date until which it applies (exclusive).
    pub end_date: Option<String>,
    /// Energy charged so far from which it applies (kWh, inclusive).
    pub min_kwh: Option<f64>,
    /// Energy charged so far until which it applies (kWh, exclusive).
    pub max_kwh: Option<f64>,
    /// Charging current from which it applies (A, summed over phases).
    pub min_current: Option<f64>,
    /// Charging current below which it applies (A, summed over phases).
    pub max_current: Option<f64>,
    /// Charging power from which it applies (kW).
    pub min_power: Option<f64>,
    /// Charging power below which it applies (kW).
    pub max_power: Option<f64>,
    /// Session duration from which it applies (s, inclusive).
    pub min_duration: Option<i64>,
    /// Session duration until which it applies (s, exclusive).
    pub max_duration: Option<i64>,
    /// Days of the week on which it applies (none: every day).
    #[serde(default)]
    pub day_of_week: Vec<DayOfWeek>,
    /// Present: the element prices reservations, not charging sessions.
    pub reservation: Option<ReservationRestrictionType>,
}

/// OCPI `TariffElement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TariffElement {
    /// The price components (one per dimension that this element prices).
    pub price_components: Vec<PriceComponent>,
    /// When the element applies (always, when absent).
    pub restrictions: Option<TariffRestrictions>,
}

/// OCPI `Tariff` (the fields evflex prices with; the rest is kept as received).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tariff {
    /// Country code of the CPO that owns it.
    pub country_code: String,
    /// Party id of the CPO that owns it.
    pub party_id: String,
    /// Tariff id.
    pub id: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// The least a session with this tariff costs.
    pub min_price: Option<Price>,
    /// The most a session with this tariff costs.
    pub max_price: Option<Price>,
    /// The elements, in order of precedence.
    pub elements: Vec<TariffElement>,
    /// From when the tariff is valid.
    pub start_date_time: Option<DateTime>,
    /// Until when the tariff is valid.
    pub end_date_time: Option<DateTime>,
    /// Last change.
    pub last_updated: DateTime,
}

/// OCPI `Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Charge point operator.
    Cpo,
    /// eMobility service provider.
    Emsp,
    /// Hub.
    Hub,
    /// National access point.
    Nap,
    /// Navigation service provider.
    Nsp,
    /// Other.
    Other,
    /// Smart charging service provider.
    Scsp,
}

/// OCPI `BusinessDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessDetails {
    /// Name.
    pub name: String,
    /// Website.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// OCPI `CredentialsRole`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialsRole {
    /// Role.
    pub role: Role,
    /// Business details.
    pub business_details: BusinessDetails,
    /// Party id.
    pub party_id: String,
    /// Country code.
    pub country_code: String,
}

/// OCPI `Credentials`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// The token the other party must use when calling the sender.
    pub token: String,
    /// The sender's versions URL.
    pub url: String,
    /// The sender's roles.
    pub roles: Vec<CredentialsRole>,
}

/// OCPI `Version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// Version number.
    pub version: String,
    /// Its version details URL.
    pub url: String,
}

/// OCPI `Endpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Module id.
    pub identifier: String,
    /// `SENDER` or `RECEIVER`.
    pub role: String,
    /// URL.
    pub url: String,
}

/// OCPI `VersionDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDetails {
    /// Version number.
    pub version: String,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// OCPI `ChargingProfileResultType` / `ChargingProfileResponseType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargingProfileResultType {
    /// Accepted.
    Accepted,
    /// Rejected.
    Rejected,
    /// Unknown (session).
    Unknown,
    /// Not supported.
    NotSupported,
    /// Too often.
    TooOften,
    /// Unknown session.
    UnknownSession,
}

/// An asynchronous `ChargingProfileResult` (or `ActiveChargingProfileResult` /
/// `ClearProfileResult`) posted by the CPO to evflex's `response_url`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChargingProfileResult {
    /// Result.
    pub result: ChargingProfileResultType,
}

/// OCPI `ChargingRateUnit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargingRateUnit {
    /// Watts.
    W,
    /// Amperes (per phase).
    A,
}

impl ChargingRateUnit {
    /// `W` or `A`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::W => "W",
            Self::A => "A",
        }
    }
}

/// OCPI `ChargingProfilePeriod`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChargingProfilePeriod {
    /// Start of the period, seconds from the profile's start.
    pub start_period: i64,
    /// The limit, in the profile's `charging_rate_unit`.
    pub limit: f64,
}

/// OCPI `ChargingProfile` (as a CPO reports one in force).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChargingProfile {
    /// Start of the profile, if absolute.
    pub start_date_time: Option<DateTime>,
    /// Duration (s).
    pub duration: Option<i64>,
    /// Unit of the limits.
    pub charging_rate_unit: ChargingRateUnit,
    /// Minimum charging rate.
    pub min_charging_rate: Option<f64>,
    /// The periods, in order of `start_period`.
    #[serde(default)]
    pub charging_profile_period: Vec<ChargingProfilePeriod>,
}

/// OCPI `ActiveChargingProfile`: the profile in force at a charge point, sent by the CPO when it
/// changes (`PUT`) or as the answer to evflex's `GET`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActiveChargingProfile {
    /// When the profile's periods start.
    pub start_date_time: DateTime,
    /// The profile.
    pub charging_profile: ChargingProfile,
}

impl ActiveChargingProfile {
    /// The limit in force at `now` (Unix s): that of the last period started by then, unless
    /// the profile is over (`duration`) or has not begun.
    pub fn limit_at(&self, now: i64) -> Option<f64> {
        let elapsed = now - self.start_date_time.0;
        let p = &self.charging_profile;
        if elapsed < 0 || p.duration.is_some_and(|d| elapsed >= d) {
            return None;
        }
        p.charging_profile_period
            .iter()
            .filter(|period| period.start_period <= elapsed)
            .max_by_key(|period| period.start_period)
            .map(|period| period.limit)
    }
}

/// OCPI `ActiveChargingProfileResult`: the CPO's asynchronous answer to a `GET`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActiveChargingProfileResult {
    /// Result.
    pub result: ChargingProfileResultType,
    /// The profile in force, when `ACCEPTED`.
    pub profile: Option<ActiveChargingProfile>,
}

/// Parses JSON into `T`, naming the offending field (`evses[0].status: unknown variant …`).
pub fn parse<T: de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_power_from_ratings() {
        let c: Connector = parse(serde_json::json!({
            "id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
            "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": 16
        }))
        .unwrap();
        assert_eq!(c.rated_power_w(), Some(11_040));
        let c: Connector = parse(serde_json::json!({
            "id": "1", "standard": "IEC_62196_T2", "format": "CABLE", "max_electric_power": 22000
        }))
        .unwrap();
        assert_eq!(c.rated_power_w(), Some(22_000));
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<Evse>(serde_json::json!({
            "uid": "1", "status": "FLYING", "connectors": [], "last_updated": "2019-06-24T12:39:09Z"
        }))
        .unwrap_err();
        assert!(err.starts_with("status:"), "{err}");
        let err = parse::<SessionPatch>(serde_json::json!({"kwh": 1.0})).unwrap_err();
        assert!(err.contains("last_updated"), "{err}");
        let err = parse::<SessionPatch>(serde_json::json!({
            "kwh": "lots", "last_updated": "2019-06-24T12:39:09Z"
        }))
        .unwrap_err();
        assert!(err.starts_with("kwh:"), "{err}");
    }
}
