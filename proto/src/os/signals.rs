//! Signal names and numbers as people write them (`TERM`, `SIGTERM`, `15`), for Linux.

/// The standard signals by number.
const NAMES: &[(i32, &str)] = &[
    (1, "HUP"),
    (2, "INT"),
    (3, "QUIT"),
    (4, "ILL"),
    (5, "TRAP"),
    (6, "ABRT"),
    (7, "BUS"),
    (8, "FPE"),
    (9, "KILL"),
    (10, "USR1"),
    (11, "SEGV"),
    (12, "USR2"),
    (13, "PIPE"),
    (14, "ALRM"),
    (15, "TERM"),
    (17, "CHLD"),
    (18, "CONT"),
    (19, "STOP"),
    (20, "TSTP"),
    (21, "TTIN"),
    (22, "TTOU"),
    (23, "URG"),
    (24, "XCPU"),
    (25, "XFSZ"),
    (26, "VTALRM"),
    (27, "PROF"),
    (28, "WINCH"),
    (29, "IO"),
    (30, "PWR"),
    (31, "SYS"),
];

/// `SIGTERM` for 15, or `signal 40` for a number without a name.
pub fn describe(signal: i32) -> String {
    match NAMES.iter().find(|(n, _)| *n == signal) {
        Some((_, name)) => format!("SIG{name}"),
        None => format!("signal {signal}"),
    }
}

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse(text: &str) -> Result<i32, String> {
    if let Ok(number) = text.parse::<i32>() {
        return if NAMES.iter().any(|(n, _)| *n == number) {
            Ok(number)
        } else {
            Err(format!(
                "{number} is not a standard signal number (1 to 31)"
            ))
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(number, _)| *number)
        .ok_or_else(|| {
            format!("`{text}` is not a signal name; try INT, TERM, KILL, HUP, USR1 or a number")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        assert_eq!(parse("TERM"), Ok(15));
        assert_eq!(parse("sigint"), Ok(2));
        assert_eq!(parse("9"), Ok(9));
        assert!(parse("BOGUS").is_err());
        assert!(parse("0").is_err());
        assert_eq!(describe(15), "SIGTERM");
        assert_eq!(describe(40), "signal 40");
    }
}
