//! A destination's limits on the way to a send: the [`Limiter`] port
//! (each driver keeps the state: `hookflow dev` in memory, the functions in
//! the table) and [`admit`], what a delivery's limits let it do now. The
//! delivery pipeline and a sync trigger's inline steps both go through it.

use std::future::Future;
use std::time::Duration;

use hookflow_core::commit::DeliveryJob;
use hookflow_core::limit::{Limits, RateLimit, Slot};
use hookflow_core::ports::PortError;
use hookflow_core::run::Purpose;
use hookflow_core::subscription::Subscription;

/// Where a destination's limits are kept ([`hookflow_core::limit`]).
pub trait Limiter {
    /// A place in flight, held from [`Limiter::enter`] to
    /// [`Limiter::leave`].
    type Permit: Send;

    /// Which pacing state this limiter's slots are reservations in
    /// ([`Slot::epoch`]): a slot from another is reserved again.
    fn epoch(&self) -> i64;

    /// How long from now one delivery to `key` waits for its slot under
    /// `rate` ([`hookflow_core::limit::reserve`]; zero: it goes now).
    fn reserve(&self, key: &str, rate: &RateLimit) -> impl Future<Output = Result<Duration, PortError>> + Send;

    /// One of `max` places in flight to `key`, held at most `hold` (a
    /// worker that dies holding it loses it then); or, all taken, how long
    /// from now to come back.
    fn enter(
        &self,
        key: &str,
        max: u32,
        hold: Duration,
    ) -> impl Future<Output = Result<Result<Self::Permit, Duration>, PortError>> + Send;

    /// Gives a place back after an attempt that took `took_ms`.
    fn leave(&self, permit: Self::Permit, took_ms: u64) -> impl Future<Output = ()> + Send;
}

/// How long past its timeout an attempt holds its place in flight (its
/// secrets, its commit).
pub const HOLD_MARGIN: Duration = Duration::from_secs(60);

/// What a delivery's limits let it do now.
pub enum Admission<P> {
    /// Send, holding the place (if it takes one); a retry of this attempt
    /// takes a slot of its own.
    Go(Option<P>),
    /// Back to the queue for this long, holding its slot (the job has it).
    Wait(Duration),
}

/// The limits of `job` and the key they are kept under: a subscription's
/// event by the subscription's (`sub`, as read now), a flow step by its
/// host's (as its flow said when the step ran); a verification request is
/// not limited.
pub fn of(job: &DeliveryJob, sub: Option<&Subscription>) -> Option<(String, Limits)> {
    let (key, limits) = match (&job.delivery.purpose, sub) {
        (Purpose::Event { .. }, Some(s)) => (s.id.clone(), s.limits()),
        (Purpose::Step, _) => job.delivery.limit.as_ref().map(|l| (l.key.clone(), l.limits))?,
        _ => return None,
    };
    (!limits.is_none()).then_some((key, limits))
}

/// Takes `job`'s slot under its pace (unless it holds one still good) and
/// a place in flight: [`Admission::Go`], or how long it waits first.
/// Waiting spends no attempt and no retry budget (the wait is added to
/// the job's `waited_ms`); the slot it reserved goes with the job.
pub async fn admit<L: Limiter>(
    l: &L,
    limited: Option<(String, Limits)>,
    job: &mut DeliveryJob,
    now_ms: i64,
) -> Result<Admission<L::Permit>, PortError> {
    let Some((key, limits)) = limited else {
        job.slot = None;
        return Ok(Admission::Go(None));
    };
    match limits.rate_limit {
        Some(rate) if !job.slot.is_some_and(|s| s.holds(&rate, l.epoch(), now_ms)) => {
            let wait = l.reserve(&rate.pace_key(&key), &rate).await?;
            job.slot = Some(Slot { at: now_ms + wait.as_millis() as i64, rate, epoch: l.epoch() });
            if !wait.is_zero() {
                job.waited_ms += wait.as_millis() as u64;
                return Ok(Admission::Wait(wait));
            }
        }
        Some(_) => {}
        None => job.slot = None,
    }
    let permit = match limits.max_in_flight {
        Some(max) => match l.enter(&key, max, job.delivery.timeout + HOLD_MARGIN).await? {
            Ok(permit) => Some(permit),
            Err(back_in) => {
                job.waited_ms += back_in.as_millis() as u64;
                return Ok(Admission::Wait(back_in));
            }
        },
        None => None,
    };
    job.slot = None;
    Ok(Admission::Go(permit))
}
