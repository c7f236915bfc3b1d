//! CUDA ceiling: the newest CUDA the loaded driver supports, from the
//! compatibility data. An unknown branch is reported, never guessed.

use plumbline_api::{Observed, ProbeStatus};
use plumbline_compat::DriverVersion;

use super::finish;
use crate::{Context, Outcome};

pub fn probe(cx: &Context<'_>, so_far: &Observed) -> Outcome<Option<String>> {
    let Some(version) = so_far.driver.version.as_deref() else {
        return Outcome::absent("no driver version: no kernel module was read");
    };
    let driver = match DriverVersion::parse(version) {
        Ok(d) => d,
        Err(e) => return Outcome::error(e.to_string()),
    };
    let compat = cx.options.compat;
    match compat.cuda_ceiling(&driver) {
        Some(ceiling) => {
            let confirmed = compat.ceiling_is_confirmed(driver.branch()).unwrap_or(true);
            let value = Some(ceiling.to_string());
            if confirmed {
                Outcome::ok(value)
            } else {
                Outcome::ok_with(
                    value,
                    format!(
                        "the ceiling of branch {} is unconfirmed in the compatibility data (data version {})",
                        driver.branch(),
                        compat.data_version()
                    ),
                )
            }
        }
        None => Outcome::ok_with(
            None,
            format!(
                "branch {} is not in the compatibility data (data version {})",
                driver.branch(),
                compat.data_version()
            ),
        ),
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    let outcome = probe(cx, observed);
    finish(outcome, |v| observed.driver.cuda_ceiling = v)
}
