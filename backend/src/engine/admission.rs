//! Admission control for charging requests: a request is accepted only if its group's problem
//! stays feasible with it as a hard constraint; otherwise the user is offered the largest
//! energy that can be guaranteed by the departure ([`evflex_schedule::admit`], which also
//! rejects more than the vehicle itself can take by its departure at the lower of its own and
//! the charge point's power). The optimiser counts whole steps, and a vehicle's window ends at
//! the last step boundary before its departure, in admission as in the plan
//! (`snapshot::steps_until`); the part of the current step already past is added to the request
//! at full power, so that limit holds from now. An EVSE outside every group is limited only by
//! its own power.

use super::Engine;
use super::snapshot::{self, min_power_w, steps_until};
use crate::domain::{TIME_STEP_S, step_start, timestep_of};
use crate::store::requests::{self, ChargingRequest, Decision};
use crate::store::sessions::StoredSession;
use crate::store::{StoreError, groups, locations};
use evflex_schedule::{Admission, Vehicle, VehicleClass};

/// Errors of admission control.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The request is not meaningful (departure passed, no energy).
    #[error("{0}")]
    Invalid(String),
    /// The optimiser rejected the inputs or failed.
    #[error("optimiser: {0}")]
    Solver(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AdmissionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

/// A request to decide.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The user asking.
    pub user_id: i64,
    /// The session it is for: one linked to `user_id`.
    pub session: StoredSession,
    /// Energy wanted from now (Wh).
    pub energy_wh: i64,
    /// For an accepted offer: all the energy the driver asked for from now (Wh), of which
    /// `energy_wh` is to be guaranteed and the rest is delivered as best effort.
    pub energy_wanted_wh: Option<i64>,
    /// Target SoC (%), when asked that way.
    pub target_soc_percent: Option<i64>,
    /// Battery capacity (Wh), when given.
    pub battery_capacity_wh: Option<i64>,
    /// Energy in the battery now (Wh), when its size and SoC are known: the plan then follows
    /// its taper.
    pub battery_energy_wh: Option<i64>,
    /// The vehicle's own maximum charging power (W), when given.
    pub vehicle_max_power_w: Option<i64>,
    /// Departure (Unix seconds).
    pub departure_ts: i64,
}

/// Decides a request for one of the user's own sessions (linked by its token, see
/// `engine::tokens`) and stores it.
#[tracing::instrument(skip_all, fields(session = %req.session.record.session_id, energy_wh = req.energy_wh))]
pub async fn decide(engine: &Engine, req: NewRequest) -> Result<ChargingRequest, AdmissionError> {
    let now = engine.clock.now();
    if req.energy_wh <= 0 {
        return Err(AdmissionError::Invalid(
            "energy: must be positive".to_owned(),
        ));
    }
    if req.departure_ts <= now {
        return Err(AdmissionError::Invalid(
            "departure: must be in the future".to_owned(),
        ));
    }
    let timestep = timestep_of(now, TIME_STEP_S);
    let t0 = step_start(timestep, TIME_STEP_S);
    let h = engine.config.horizon_steps.max(1);
    let s = &req.session.record;
    let (group_id, admission, delivered_at_request) = {
        let mut conn = engine.db.conn().await?;
        // The same measure of delivered energy as the plan's (`snapshot::delivered_wh`), so
        // the energy "since the request" starts from what the plan will count.
        let delivered_at_request = snapshot::delivered_wh(&mut conn, s, now).await?;
        let evse =
            locations::get_evse(&mut conn, &s.country_code, &s.party_id, &s.evse_uid).await?;
        let max_power_w = snapshot::vehicle_power_w(
            evse.as_ref()
                .and_then(|e| e.record.rated_power_w)
                .unwrap_or(engine.config.default_evse_power_w),
            req.vehicle_max_power_w,
        );
        let min_power = min_power_w(
            evse.as_ref().and_then(|e| e.record.power_type.as_deref()),
            evse.as_ref().and_then(|e| e.record.phases),
            max_power_w,
        );
        let departure = steps_until(t0, req.departure_ts, TIME_STEP_S, h);
        // The optimiser's window is whole steps: from the start of the current step to the
        // last step boundary before the departure (`steps_until`, the plan's own window). The
        // parts of it the vehicle cannot use (already past; after its departure, when it
        // leaves within the current step) are added to the request at what it could draw in them, so
        // `admit`'s rule "never more than the vehicle can take in its window" holds from now.
        let window_end = t0 + departure as i64 * i64::from(TIME_STEP_S);
        // The part already past at what the battery could have drawn in it
        // (`snapshot::elapsed_pad_wh`: a tapering one less than its full power).
        let battery_now = req
            .battery_capacity_wh
            .zip(req.battery_energy_wh)
            .zip(snapshot::learned_knee(&engine.config, &req.session))
            .map(
                |((capacity_wh, energy_wh), knee_permille)| snapshot::BatteryNow {
                    capacity_wh,
                    energy_wh,
                    knee_permille,
                },
            );
        let lost_before_now_wh =
            snapshot::elapsed_pad_wh(max_power_w, battery_now.as_ref(), now - t0);
        let pad_wh = lost_before_now_wh.saturating_add(
            ((max_power_w as i128 * (window_end - req.departure_ts).max(0) as i128 + 3_599) / 3_600)
                as i64,
        );
        let own_max_wh = (max_power_w as i128 * (req.departure_ts - now) as i128 / 3_600) as i64;
        let mut vehicle = Vehicle {
            id: snapshot::vehicle_id(req.session.id),
            arrival: 0,
            departure,
            max_power_w,
            min_power_w: min_power,
            energy_requested_wh: req.energy_wh.saturating_add(pad_wh),
            battery_capacity_wh: req.battery_capacity_wh,
            // At the step's start, as if the pad had been charged since (`snapshot::pad_elapsed`).
            energy_on_arrival_wh: req
                .battery_energy_wh
                .map(|e| (e - lost_before_now_wh).max(0)),
            class: VehicleClass::Guaranteed,
            efficiency_permille: 1000,
            taper_knee_permille: battery_now.map(|b| b.knee_permille),
            energy_wanted_wh: None,
        };
        let group_id =
            groups::group_of_evse(&mut conn, &s.country_code, &s.party_id, &s.evse_uid).await?;
        match group_id {
            None => {
                // Alone on its connection: only the EVSE's (or the vehicle's lower) power and the
                // time until departure limit it.
                let max_wh = own_max_wh;
                let admission = if req.energy_wh <= max_wh {
                    Admission::Accepted
                } else {
                    Admission::Rejected {
                        max_guaranteed_wh: max_wh,
                        earliest_full_departure: None,
                    }
                };
                (None, admission, delivered_at_request)
            }
            Some(gid) => {
                let group = groups::get(&mut conn, gid)
                    .await?
                    .ok_or_else(|| AdmissionError::Invalid("group disappeared".to_owned()))?;
                let mut snap = snapshot::snapshot(
                    &mut conn,
                    &engine.config,
                    &group,
                    timestep,
                    engine.clock.now(),
                )
                .await?;
                // The others as a re-plan now would see them: the part of the step already
                // past is padded at the power each was planned to draw in it
                // (`snapshot::pad_elapsed`), so admission does not count on it.
                let planned = match crate::store::schedules::latest_before(
                    &mut conn,
                    gid,
                    timestep as i64 + 1,
                )
                .await?
                {
                    Some(last) => super::plan::previous_schedule(&last)
                        .map(|p| snapshot::planned_in_step(&p, last.timestep, timestep as i64))
                        .unwrap_or_default(),
                    None => Default::default(),
                };
                snapshot::pad_elapsed(&mut snap.inputs, now - t0, &planned);
                // A tree needs the request's charge point; its session is a vehicle of the
                // snapshot unless its charge point is planned at its measured draw.
                if let Some(top) = snap.inputs.topology.as_mut()
                    && !top.charge_points.iter().any(|c| c.vehicle_id == vehicle.id)
                {
                    top.charge_points.push(snapshot::charge_point(
                        &group.record.electrical,
                        evse.as_ref(),
                        &s.evse_uid,
                        &vehicle.id,
                    ));
                }
                // An amps point's minimum is its own (as in the snapshot).
                if snap.inputs.topology.as_ref().is_some_and(|t| {
                    t.charge_points.iter().any(|c| {
                        c.vehicle_id == vehicle.id && c.unit == evflex_schedule::RateUnit::Amps
                    })
                }) {
                    vehicle.min_power_w = 0;
                }
                // The request's car as the plan will see it: one phase when its own maximum
                // says it can only be single-phase. `admit` adds the car; it is looked up by id.
                if let Some(top) = snap.inputs.topology.as_mut() {
                    snapshot::infer_single_phase(top, std::slice::from_ref(&vehicle));
                }
                drop(conn);
                let opts = engine.solve_options();
                let _permit = engine
                    .solve_slots
                    .acquire()
                    .await
                    .map_err(|e| AdmissionError::Solver(e.to_string()))?;
                let admission = tokio::task::spawn_blocking(move || {
                    evflex_schedule::admit(&snap.inputs, &vehicle, &opts)
                })
                .await
                .map_err(|e| AdmissionError::Solver(e.to_string()))?
                .map_err(|e| AdmissionError::Solver(e.to_string()))?;
                // `admit` rejects a request above the vehicle's own window maximum itself;
                // only the padding for the unusable parts of the window comes off the offer.
                let admission = match admission {
                    Admission::Accepted => Admission::Accepted,
                    Admission::Rejected {
                        max_guaranteed_wh,
                        earliest_full_departure,
                    } => Admission::Rejected {
                        max_guaranteed_wh: (max_guaranteed_wh - pad_wh).clamp(0, req.energy_wh),
                        earliest_full_departure,
                    },
                };
                (Some(gid), admission, delivered_at_request)
            }
        }
    };
    let (decision, max_guaranteed_wh, earliest) = match admission {
        Admission::Accepted => (Decision::Accepted, None, None),
        Admission::Rejected {
            max_guaranteed_wh,
            earliest_full_departure,
        } => (
            Decision::Rejected,
            Some(max_guaranteed_wh),
            earliest_full_departure.map(|step| t0 + step as i64 * i64::from(TIME_STEP_S)),
        ),
    };
    metrics::counter!("evflex_charging_requests_total", "decision" => decision.as_str())
        .increment(1);
    let mut request = ChargingRequest {
        id: 0,
        user_id: req.user_id,
        session_row: req.session.id,
        group_id,
        energy_wh: req.energy_wh,
        energy_wanted_wh: req.energy_wanted_wh.filter(|w| *w > req.energy_wh),
        target_soc_percent: req.target_soc_percent,
        battery_capacity_wh: req.battery_capacity_wh,
        battery_energy_wh: req.battery_energy_wh,
        vehicle_max_power_w: req.vehicle_max_power_w,
        departure_ts: req.departure_ts,
        session_energy_wh_at_request: delivered_at_request,
        decision,
        max_guaranteed_wh,
        earliest_full_departure_ts: earliest,
        created_at: now,
    };
    let mut tx = engine.db.begin().await?;
    request.id = requests::insert(&mut tx, &request, now).await?;
    tx.commit().await?;
    // The decision changes the group's plan (a guarantee, or the session's best effort): the
    // accepted request's set-point goes out with the re-plan, not at the next tick.
    if let Some(g) = group_id {
        super::replan::request_or_log(engine, g, "request").await;
    }
    Ok(request)
}
