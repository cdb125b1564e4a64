//! Finding the TLV headers of a DER (or BER) structure, so mutations can hit real tags and
//! lengths instead of random bytes.

/// One TLV header: where it starts, how long the header is, its content length, and whether
/// the element is constructed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) offset: usize,
    pub(crate) header_len: usize,
    pub(crate) content_len: usize,
}

/// Every header reachable from the start of `bytes`, depth first, at most `limit` of them.
/// Stops quietly at the first thing that does not parse.
pub(crate) fn headers(bytes: &[u8], limit: usize) -> Vec<Header> {
    let mut out = Vec::new();
    walk(bytes, 0, bytes.len(), 0, limit, &mut out);
    out
}

fn walk(
    bytes: &[u8],
    mut at: usize,
    end: usize,
    depth: usize,
    limit: usize,
    out: &mut Vec<Header>,
) {
    while at < end && out.len() < limit && depth < 64 {
        let Some((header, constructed)) = parse_header(bytes, at, end) else {
            return;
        };
        out.push(header);
        let content = at + header.header_len;
        let next = content + header.content_len;
        if constructed {
            walk(bytes, content, next, depth + 1, limit, out);
        } else if let Some(inner) = bytes.get(content..next)
            // An OCTET STRING or a BIT STRING often wraps DER (CMS content, keys).
            && matches!(bytes.get(at), Some(0x04 | 0x03))
            && inner.first() == Some(&0x30)
        {
            walk(bytes, content, next, depth + 1, limit, out);
        }
        at = next;
    }
}

fn parse_header(bytes: &[u8], at: usize, end: usize) -> Option<(Header, bool)> {
    let tag = *bytes.get(at)?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in what GuardMDM reads
    }
    let first = *bytes.get(at + 1)?;
    let (header_len, content_len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*bytes.get(at + 2 + i)?);
        }
        (2 + n, len)
    };
    if at + header_len + content_len > end {
        return None;
    }
    Some((
        Header {
            offset: at,
            header_len,
            content_len,
        },
        tag & 0x20 != 0,
    ))
}
