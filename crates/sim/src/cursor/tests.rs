use super::*;

const KEY: &[u8] = b"cursor-key";
const WEEK: i64 = 7 * 86_400;

fn ctx(log_len: u64, now: i64) -> CursorContext<'static> {
    CursorContext {
        key: KEY,
        server: 3,
        log_len,
        now,
        max_age: WEEK,
        generation: 0,
    }
}

fn issue(kind: CursorKind, position: u64, end: u64, issued: i64) -> String {
    encode(
        &Cursor {
            server: 3,
            kind,
            position,
            end,
            issued,
            generation: 0,
        },
        KEY,
    )
}

#[test]
fn round_trip() {
    let text = issue(CursorKind::Fetch, 5, 10, 1000);
    let c = decode(&text, &ctx(10, 1000)).unwrap();
    assert_eq!(
        (c.kind, c.position, c.end, c.issued),
        (CursorKind::Fetch, 5, 10, 1000)
    );
}

#[test]
fn garbage_foreign_and_tampered_cursors_are_invalid() {
    let c = ctx(10, 1000);
    assert_eq!(decode("not base64!", &c), Err(CursorError::Invalid));
    assert_eq!(decode("MTY1NzI2ODE5Ny0x", &c), Err(CursorError::Invalid));
    let other = encode(
        &Cursor {
            server: 4,
            kind: CursorKind::Sync,
            position: 1,
            end: 1,
            issued: 1000,
            generation: 0,
        },
        KEY,
    );
    assert_eq!(decode(&other, &c), Err(CursorError::Invalid));
    let good = issue(CursorKind::Sync, 2, 2, 1000);
    let raw = String::from_utf8(STANDARD.decode(&good).unwrap()).unwrap();
    let edited = STANDARD.encode(raw.replacen("-S-2-", "-S-1-", 1));
    assert_eq!(decode(&edited, &c), Err(CursorError::Invalid));
    let beyond = issue(CursorKind::Sync, 11, 11, 1000);
    assert_eq!(decode(&beyond, &c), Err(CursorError::Invalid));
    assert_eq!(decode(&"A".repeat(1001), &c), Err(CursorError::Invalid));
}

#[test]
fn fetch_starts_continues_and_exhausts() {
    let c = ctx(10, 1000);
    assert_eq!(plan_fetch(None, &c), Ok(FetchRange { start: 0, end: 10 }));
    assert_eq!(
        plan_fetch(Some(""), &c),
        Ok(FetchRange { start: 0, end: 10 })
    );
    let mid = issue(CursorKind::Fetch, 4, 8, 1000);
    assert_eq!(
        plan_fetch(Some(&mid), &c),
        Ok(FetchRange { start: 4, end: 8 })
    );
    let done = issue(CursorKind::Fetch, 8, 8, 1000);
    assert_eq!(plan_fetch(Some(&done), &c), Err(CursorError::Exhausted));
    let sync = issue(CursorKind::Sync, 9, 9, 1000);
    assert_eq!(plan_fetch(Some(&sync), &c), Err(CursorError::Exhausted));
}

#[test]
fn sync_requires_a_fresh_cursor() {
    let c = ctx(10, 1000 + WEEK);
    assert_eq!(plan_sync(None, &c), Err(CursorError::Required));
    assert_eq!(plan_sync(Some(" "), &c), Err(CursorError::Required));
    let fresh = issue(CursorKind::Sync, 7, 7, 1000);
    assert_eq!(plan_sync(Some(&fresh), &c), Ok(7));
    let from_fetch = issue(CursorKind::Fetch, 6, 10, 1000);
    assert_eq!(plan_sync(Some(&from_fetch), &c), Ok(6));
    let stale = issue(CursorKind::Sync, 7, 7, 999);
    assert_eq!(plan_sync(Some(&stale), &c), Err(CursorError::Expired));
    let bumped = CursorContext { generation: 1, ..c };
    assert_eq!(plan_sync(Some(&fresh), &bumped), Err(CursorError::Expired));
}

#[test]
fn codes_are_apples() {
    assert_eq!(CursorError::Required.code(), "CURSOR_REQUIRED");
    assert_eq!(CursorError::Invalid.code(), "INVALID_CURSOR");
    assert_eq!(CursorError::Exhausted.code(), "EXHAUSTED_CURSOR");
    assert_eq!(CursorError::Expired.code(), "EXPIRED_CURSOR");
}
