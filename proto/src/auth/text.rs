//! Writing a signature header without the formatting machinery: the hot path of every signed
//! call builds its header with one allocation, which then becomes the header value as it is.

/// Room for a usual header: the scheme, a timestamp, a nonce of up to 64 characters and 64 hex
/// digits of signature, with their separators.
const USUAL_HEADER: usize = 192;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A signature header being written.
pub(super) struct HeaderText {
    bytes: Vec<u8>,
}

impl HeaderText {
    pub(super) fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(USUAL_HEADER),
        }
    }

    /// Appends `part`.
    pub(super) fn push(&mut self, part: &[u8]) {
        self.bytes.extend_from_slice(part);
    }

    /// Appends `bytes` as lower-case hex.
    pub(super) fn push_hex(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(&[
                HEX_DIGITS[usize::from(b >> 4)],
                HEX_DIGITS[usize::from(b & 0xf)],
            ]);
        }
    }

    /// The text, as a string (lossless: everything pushed is ASCII or comes from a `&str`).
    pub(super) fn into_string(self) -> String {
        String::from_utf8(self.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The text as bytes.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// `value` in plain decimal (a `-` first if negative), in a small stack buffer.
pub(super) fn decimal(value: i64, out: &mut [u8; 20]) -> &[u8] {
    let mut n = value.unsigned_abs();
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        out[at] = b'-';
    }
    &out[at..]
}

/// `value` in lower-case hex without leading zeros ("0" for zero).
pub(super) fn hex_u64(value: u64, out: &mut [u8; 16]) -> &[u8] {
    let mut n = value;
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = HEX_DIGITS[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &out[at..]
}

/// Each byte's value as a lower-case hex digit, or [`NOT_HEX`].
static NIBBLES: [u8; 256] = nibbles();

/// [`NIBBLES`]' mark for a byte that is not a lower-case hex digit: its high bit survives
/// any OR with real digit values (0-15).
const NOT_HEX: u8 = 0xff;

const fn nibbles() -> [u8; 256] {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        table[HEX_DIGITS[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
}

/// Decodes exactly 64 lower-case hex digits into 32 bytes; `None` for anything else.
///
/// Every signed call's signature passes here on the hub: a table look-up per digit and one
/// check at the end, where a branch per digit mispredicted on about every other one (a
/// signature's digits are random).
pub(super) fn decode_sig_hex(text: &[u8]) -> Option<[u8; 32]> {
    let text: &[u8; 64] = text.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        seen |= high | low;
        *byte = (high << 4) | low;
    }
    (seen < 16).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_to_string() {
        for value in [0, 7, 10, 1_700_000_000, -1, -600, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(value, &mut buf), value.to_string().as_bytes());
        }
    }

    #[test]
    fn hex_matches_the_hex_crate_and_format() {
        let mut text = HeaderText::new();
        let bytes: Vec<u8> = (0..=255).collect();
        text.push_hex(&bytes[..90]);
        assert_eq!(text.into_string(), hex::encode(&bytes[..90]));
        for value in [0, 1, 0xf, 0x10, 0xdead_beef, u64::MAX] {
            let mut buf = [0u8; 16];
            assert_eq!(hex_u64(value, &mut buf), format!("{value:x}").as_bytes());
        }
    }

    #[test]
    fn sig_hex_takes_exactly_64_lowercase_digits() {
        let sig: Vec<u8> = (0..32).map(|i| i * 7).collect();
        let text = hex::encode(&sig);
        assert_eq!(decode_sig_hex(text.as_bytes()).map(Vec::from), Some(sig));
        for bad in [
            text.to_uppercase(),
            text[..62].to_owned(),
            format!("{text}00"),
            format!("{}g", &text[..63]),
            format!("{} ", &text[..63]),
        ] {
            assert_eq!(decode_sig_hex(bad.as_bytes()), None, "{bad}");
        }
        // Every other byte, first or last.
        for b in (0..=255u8).filter(|b| !HEX_DIGITS.contains(b)) {
            for at in [0, 63] {
                let mut bad = text.clone().into_bytes();
                bad[at] = b;
                assert_eq!(decode_sig_hex(&bad), None, "byte {b:#04x} at {at}");
            }
        }
    }
}
