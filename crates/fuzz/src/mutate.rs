//! The mutations.

use crate::der;
use crate::rng::Rng;

/// The largest input a mutation produces: the size class of the bodies the server reads.
pub const MAX_INPUT: usize = 64 * 1024;

/// Bytes that often sit on a boundary.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x0a, 0x0d, b'<', b'>', b'"', b'\'',
    b'&', b'\\', b',', b':', b'{', b'}', b'[', b']', b'-', b'=', b'+', b'/',
];

/// Numbers that often sit on a boundary, as text.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "255",
    "256",
    "65536",
    "2147483647",
    "-2147483648",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e-400",
    "NaN",
    "0x10",
    "1.5",
    "",
];

/// DER lengths that break things: indefinite, huge, one off.
const LENGTHS: &[&[u8]] = &[
    &[0x80],
    &[0x00],
    &[0x7f],
    &[0x81, 0xff],
    &[0x82, 0xff, 0xff],
    &[0x84, 0xff, 0xff, 0xff, 0xff],
    &[0x84, 0x7f, 0xff, 0xff, 0xff],
    &[0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
    &[0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x81, 0x00],
    &[0xff],
];

/// DER tags worth swapping in.
const TAGS: &[u8] = &[
    0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0xa0, 0xa1, 0xa3, 0x80,
    0x24, 0x00, 0x1f,
];

/// Makes inputs from valid seeds. [`Mutator::mutate`] picks a seed and stacks one to eight
/// mutations on it; inputs never exceed [`MAX_INPUT`].
#[derive(Debug, Clone)]
pub struct Mutator {
    seeds: Vec<Vec<u8>>,
    tokens: Vec<Vec<u8>>,
}

impl Mutator {
    /// A mutator over `seeds` (valid messages of the format; at least one).
    #[must_use]
    pub fn new(seeds: Vec<Vec<u8>>) -> Self {
        Self {
            seeds,
            tokens: Vec::new(),
        }
    }

    /// Adds tokens of the format (tags, keywords, delimiters) to insert and repeat.
    #[must_use]
    pub fn with_tokens<I, T>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.tokens
            .extend(tokens.into_iter().map(|t| t.as_ref().to_vec()));
        self
    }

    /// The seeds.
    #[must_use]
    pub fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    /// One input: a seed, sometimes as it is, mostly with mutations.
    pub fn mutate(&self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.seeds).cloned().unwrap_or_default();
        if rng.one_in(50) {
            return data;
        }
        // Mostly few mutations (stay close to valid, reach deep code), sometimes many.
        let rounds = if rng.one_in(4) {
            rng.between(3, 8)
        } else {
            rng.between(1, 2)
        };
        for _ in 0..rounds {
            self.once(rng, &mut data);
            data.truncate(MAX_INPUT);
        }
        data
    }

    fn once(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        match rng.below(14) {
            0 => flip_bit(rng, data),
            1 => set_byte(rng, data),
            2 => insert_random(rng, data),
            3 => delete_range(rng, data),
            4 => repeat_range(rng, data),
            5 => truncate(rng, data),
            6 => self.splice(rng, data),
            7 | 8 => self.insert_token(rng, data),
            9 => replace_number(rng, data),
            10 | 11 => der_length(rng, data),
            12 => der_tag(rng, data),
            _ => der_repeat_element(rng, data),
        }
    }

    fn splice(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let Some(other) = rng.pick(&self.seeds) else {
            return;
        };
        let cut = rng.below(data.len() + 1);
        let from = rng.below(other.len() + 1);
        data.truncate(cut);
        data.extend_from_slice(&other[from..]);
    }

    fn insert_token(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let Some(token) = rng.pick(&self.tokens) else {
            return set_byte(rng, data);
        };
        // Repeating a token nests (`<array>` × 200) or floods (`,` × 200).
        let times = if rng.one_in(5) {
            rng.between(2, 2000)
        } else {
            1
        };
        let at = rng.below(data.len() + 1);
        let chunk: Vec<u8> = token
            .iter()
            .copied()
            .cycle()
            .take(token.len().saturating_mul(times).min(MAX_INPUT))
            .collect();
        data.splice(at..at, chunk);
    }
}

fn flip_bit(rng: &mut Rng, data: &mut [u8]) {
    let i = rng.below(data.len());
    if let Some(b) = data.get_mut(i) {
        *b ^= 1 << rng.below(8);
    }
}

fn set_byte(rng: &mut Rng, data: &mut Vec<u8>) {
    let value = if rng.one_in(2) {
        rng.pick(INTERESTING).copied().unwrap_or(0)
    } else {
        rng.byte()
    };
    let i = rng.below(data.len());
    match data.get_mut(i) {
        Some(b) => *b = value,
        None => data.push(value),
    }
}

fn insert_random(rng: &mut Rng, data: &mut Vec<u8>) {
    let n = rng.between(1, 16);
    let at = rng.below(data.len() + 1);
    let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
    data.splice(at..at, bytes);
}

fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len + 1);
    let max = (len - start).min(if rng.one_in(4) { len } else { 32 });
    (start, start + rng.below(max + 1))
}

fn delete_range(rng: &mut Rng, data: &mut Vec<u8>) {
    let (a, b) = range(rng, data.len());
    data.drain(a..b);
}

fn repeat_range(rng: &mut Rng, data: &mut Vec<u8>) {
    let (a, b) = range(rng, data.len());
    if a == b {
        return;
    }
    let slice = data[a..b].to_vec();
    let times = if rng.one_in(4) {
        rng.between(2, 1000)
    } else {
        rng.between(1, 4)
    };
    let chunk: Vec<u8> = slice
        .iter()
        .copied()
        .cycle()
        .take(slice.len().saturating_mul(times).min(MAX_INPUT))
        .collect();
    data.splice(b..b, chunk);
}

fn truncate(rng: &mut Rng, data: &mut Vec<u8>) {
    let at = rng.below(data.len() + 1);
    data.truncate(at);
}

/// Replaces a run of ASCII digits (or inserts at a random spot) with a boundary number.
fn replace_number(rng: &mut Rng, data: &mut Vec<u8>) {
    let number = rng.pick(NUMBERS).copied().unwrap_or("0").as_bytes();
    let start = rng.below(data.len() + 1);
    let digit = data[start..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| start + p);
    match digit {
        Some(a) => {
            let len = data[a..].iter().take_while(|b| b.is_ascii_digit()).count();
            data.splice(a..a + len, number.iter().copied());
        }
        None => {
            data.splice(start..start, number.iter().copied());
        }
    }
}

fn pick_header(rng: &mut Rng, data: &[u8]) -> Option<der::Header> {
    let headers = der::headers(data, 4096);
    rng.pick(&headers).copied()
}

/// Gives a real TLV a wrong length: indefinite, huge, zero, or one off.
fn der_length(rng: &mut Rng, data: &mut Vec<u8>) {
    let Some(h) = pick_header(rng, data) else {
        return flip_bit(rng, data);
    };
    let len_at = h.offset + 1;
    let len_end = h.offset + h.header_len;
    let new: Vec<u8> = match rng.below(3) {
        0 => rng.pick(LENGTHS).map(|l| l.to_vec()).unwrap_or_default(),
        1 => encode_len(h.content_len.saturating_add(rng.between(1, 3))),
        _ => encode_len(h.content_len.saturating_sub(rng.between(1, 3))),
    };
    data.splice(len_at..len_end, new);
}

/// Gives a real TLV another tag.
fn der_tag(rng: &mut Rng, data: &mut [u8]) {
    let Some(h) = pick_header(rng, data) else {
        return flip_bit(rng, data);
    };
    if let Some(b) = data.get_mut(h.offset) {
        *b = rng.pick(TAGS).copied().unwrap_or(0x30);
    }
}

/// Repeats a whole real TLV element right after itself (an extra signer, certificate,
/// attribute value, …), or removes it.
fn der_repeat_element(rng: &mut Rng, data: &mut Vec<u8>) {
    let Some(h) = pick_header(rng, data) else {
        return repeat_range(rng, data);
    };
    let end = h.offset + h.header_len + h.content_len;
    if rng.one_in(3) {
        data.drain(h.offset..end);
        return;
    }
    let element = data[h.offset..end].to_vec();
    let times = rng.between(1, 3);
    for _ in 0..times {
        data.splice(end..end, element.iter().copied());
    }
}

fn encode_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![u8::try_from(len).unwrap_or(0)];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | u8::try_from(bytes.len()).unwrap_or(0)];
    out.extend(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs_and_they_stay_bounded() {
        let m = Mutator::new(vec![
            b"<plist><dict><key>A</key><integer>12</integer></dict></plist>".to_vec(),
        ])
        .with_tokens(["<array>", "<dict>"]);
        let a: Vec<Vec<u8>> = (0..200).map(|i| m.mutate(&mut Rng::new(i))).collect();
        let b: Vec<Vec<u8>> = (0..200).map(|i| m.mutate(&mut Rng::new(i))).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| x.len() <= MAX_INPUT));
        assert!(a.iter().filter(|x| x.as_slice() != m.seeds()[0]).count() > 150);
    }

    #[test]
    fn der_headers_are_found_through_nesting() {
        // SEQUENCE { INTEGER 5, OCTET STRING { SEQUENCE { NULL } } }
        let der = [
            0x30, 0x09, 0x02, 0x01, 0x05, 0x04, 0x04, 0x30, 0x02, 0x05, 0x00, 0x00,
        ];
        let found: Vec<usize> = der::headers(&der[..11], 100)
            .iter()
            .map(|h| h.offset)
            .collect();
        assert_eq!(found, vec![0, 2, 5, 7, 9]);
    }
}
