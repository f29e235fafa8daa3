//! Placeholder serial numbers: what a machine reports when its maker left the field unset.
//!
//! White-box PCs and many virtual machines report `To Be Filled By O.E.M.`, `System Serial
//! Number`, `Default string`, `0` and the like (about 1% of a real fleet). Such a value identifies
//! nothing: many machines share it. The pipeline stores it as AlgaPSA does (`assets.serial_number`
//! gets the value as reported), never lets it identify a device, and counts it
//! ([`IngestCounts::placeholder_serials`](super::IngestCounts::placeholder_serials)).
//!
//! A value is a placeholder when, compared case-insensitively and ignoring spaces and punctuation
//! (so `To be filled by OEM` matches `To Be Filled By O.E.M.`), it
//! - is empty (nothing but spaces or punctuation: `""`, `"   "`, `"-"`, `"."`);
//! - repeats one character (`0`, `0000000`, `XXXXXXXX`, `0000-0000-0000`);
//! - is one of [`PLACEHOLDERS`].
//!
//! The list is kept in docs/ingestion.md too.

/// The placeholder texts, as written by firmware and agents (matched case-insensitively, ignoring
/// spaces and punctuation).
pub const PLACEHOLDERS: &[&str] = &[
    "To Be Filled By O.E.M.",
    "System Serial Number",
    "Chassis Serial Number",
    "Base Board Serial Number",
    "Serial Number",
    "SerialNumber",
    "Default string",
    "Default",
    "OEM",
    "None",
    "Null",
    "Undefined",
    "Unknown",
    "Not Specified",
    "Not Applicable",
    "Not Available",
    "N/A",
    "Invalid",
    "Empty",
    "123456789",
    "1234567890",
    "12345678",
    "0123456789",
];

/// Lower-case letters and digits only.
fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether a reported serial number identifies nothing (see the module documentation).
pub fn is_placeholder(serial: &str) -> bool {
    let folded = fold(serial);
    let mut chars = folded.chars();
    let Some(first) = chars.next() else { return true };
    if chars.all(|c| c == first) {
        return true;
    }
    PLACEHOLDERS.iter().any(|p| fold(p) == folded)
}

/// The serial, trimmed, when it can identify a device; `None` when it is absent or a placeholder.
/// Anything that derives an identity from a serial (an asset tag, a match) goes through this.
pub fn identifying(serial: Option<&str>) -> Option<&str> {
    serial.map(str::trim).filter(|s| !is_placeholder(s))
}

/// Whether a device reported a serial number that is a placeholder: something was sent (not
/// absent, not blank) and it identifies nothing. What the run counts.
pub fn is_reported_placeholder(serial: Option<&str>) -> bool {
    serial.is_some_and(|s| !s.trim().is_empty() && is_placeholder(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_placeholders_are_not_serials() {
        for s in [
            "To Be Filled By O.E.M.",
            "to be filled by o.e.m.",
            "  TO BE FILLED BY OEM ",
            "System Serial Number",
            "Chassis Serial Number",
            "Default string",
            "DEFAULT STRING",
            "0",
            "None",
            "none",
            "Not Specified",
            "Not Applicable",
            "123456789",
            "N/A",
            "n/a",
            "",
            "   ",
            "\t",
            "-",
            "0000000",
            "00000000-0000-0000-0000-000000000000",
            "XXXXXXXXXX",
            "Unknown",
        ] {
            assert!(is_placeholder(s), "{s:?} should be a placeholder");
            assert_eq!(identifying(Some(s)), None, "{s:?}");
        }
    }

    #[test]
    fn real_serials_are_serials() {
        for s in [
            "5CG1234XYZ",
            "C02XK1ABJG5J",
            "VMware-42 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8",
            "PF2ABCDE",
            "1234567",
            "00330-80000-00000-AA123",
            "MXL9876543",
            "10",
            "ab",
        ] {
            assert!(!is_placeholder(s), "{s:?} should be a serial");
        }
        assert_eq!(identifying(Some("  5CG1234XYZ ")), Some("5CG1234XYZ"));
        assert_eq!(identifying(None), None);
    }

    #[test]
    fn only_a_reported_placeholder_is_counted() {
        assert!(is_reported_placeholder(Some("To Be Filled By O.E.M.")));
        assert!(is_reported_placeholder(Some("0")));
        assert!(!is_reported_placeholder(None), "no serial reported is not a placeholder serial");
        assert!(!is_reported_placeholder(Some("")));
        assert!(!is_reported_placeholder(Some("   ")));
        assert!(!is_reported_placeholder(Some("5CG1234XYZ")));
    }
}
