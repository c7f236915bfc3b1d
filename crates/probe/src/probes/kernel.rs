//! The running kernel: release, Secure Boot state and taint bits.

use plumbline_api::{KernelObserved, Observed, ProbeStatus};

use super::{ParseError, finish};
use crate::{Context, Outcome};

pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
pub const TAINTED: &str = "/proc/sys/kernel/tainted";
pub const EFI_DIR: &str = "/sys/firmware/efi";
pub const SECURE_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Parses `osrelease`: one non-empty line without spaces.
pub fn parse_osrelease(text: &str) -> Result<String, ParseError> {
    let release = text.trim();
    if release.is_empty() {
        return Err(ParseError::Missing {
            field: "kernel release",
        });
    }
    if release.contains(char::is_whitespace) || release.chars().any(char::is_control) {
        return Err(ParseError::invalid(
            "kernel release",
            format!("{release:?} has spaces"),
        ));
    }
    Ok(release.to_owned())
}

/// Parses `tainted`: a decimal bit mask.
pub fn parse_tainted(text: &str) -> Result<u64, ParseError> {
    text.trim().parse().map_err(|_| {
        ParseError::invalid("taint mask", format!("{:?} is not a number", text.trim()))
    })
}

/// Parses the SecureBoot efivar: 4 bytes of attributes, then one data byte.
pub fn parse_secure_boot(bytes: &[u8]) -> Result<bool, ParseError> {
    match bytes {
        [_, _, _, _, 1] => Ok(true),
        [_, _, _, _, 0] => Ok(false),
        [_, _, _, _, b] => Err(ParseError::invalid(
            "SecureBoot variable",
            format!("data byte {b} is neither 0 nor 1"),
        )),
        _ => Err(ParseError::invalid(
            "SecureBoot variable",
            format!("{} bytes, expected 5", bytes.len()),
        )),
    }
}

pub fn probe(cx: &Context<'_>) -> Outcome<KernelObserved> {
    let mut value = KernelObserved::default();
    match cx.host.read_to_string(OSRELEASE) {
        Ok(t) => match parse_osrelease(&t) {
            Ok(r) => value.release = Some(r),
            Err(e) => return Outcome::error(format!("{OSRELEASE}: {e}")),
        },
        Err(e) if e.is_not_found() => {
            return Outcome::absent(format!("{OSRELEASE} does not exist (no /proc mounted?)"));
        }
        Err(e) => return Outcome::error(e.to_string()),
    }
    match cx.host.read_to_string(TAINTED) {
        Ok(t) => match parse_tainted(&t) {
            Ok(mask) => value.tainted = Some(mask),
            Err(e) => return Outcome::error(format!("{TAINTED}: {e}")),
        },
        Err(e) if e.is_not_found() => {}
        Err(e) => return Outcome::error(e.to_string()),
    }
    // No EFI directory: BIOS boot, Secure Boot cannot be told (null). On
    // UEFI without the variable the firmware has no Secure Boot: off.
    if cx.host.is_dir(EFI_DIR) {
        match cx.host.read_bytes(SECURE_BOOT_VAR) {
            Ok(bytes) => match parse_secure_boot(&bytes) {
                Ok(on) => value.secure_boot = Some(on),
                Err(e) => return Outcome::error(format!("{SECURE_BOOT_VAR}: {e}")),
            },
            Err(e) if e.is_not_found() => value.secure_boot = Some(false),
            Err(e) => return Outcome::error(e.to_string()),
        }
    }
    Outcome::ok(value)
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.kernel = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_osrelease("6.8.0-85-generic\n").unwrap(),
            "6.8.0-85-generic"
        );
        assert!(parse_osrelease("\n").is_err());
        assert!(parse_osrelease("a b").is_err());
        assert_eq!(parse_tainted("12289\n").unwrap(), 12289);
        assert!(parse_tainted("abc").is_err());
        assert!(parse_tainted("-1").is_err());
        assert!(parse_secure_boot(&[6, 0, 0, 0, 1]).unwrap());
        assert!(!parse_secure_boot(&[6, 0, 0, 0, 0]).unwrap());
        assert!(parse_secure_boot(&[6, 0, 0]).is_err());
        assert!(parse_secure_boot(&[6, 0, 0, 0, 7]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*", b in proptest::collection::vec(any::<u8>(), 0..10)) {
            let _ = parse_osrelease(&s);
            let _ = parse_tainted(&s);
            let _ = parse_secure_boot(&b);
        }
    }
}
