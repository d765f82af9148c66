//! Golden binary fixtures: valid replies decode, malformed ones are typed errors.

use xenstore_wire::message::{Directory, Message};
use xenstore_wire::*;

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Feeds a fixture to an assembler; returns the message if it completed.
fn assemble(a: &mut Assembler, bytes: &[u8]) -> Result<Option<(Header, Vec<u8>)>, WireError> {
    let taken = a.push(bytes)?;
    assert!(taken <= bytes.len());
    Ok(a.message()
        .map(|m: Message<'_>| (m.header, m.payload.to_vec())))
}

fn reply(name: &str, request: MsgType) -> Result<Reply<'static>, WireError> {
    let mut a = Assembler::default();
    let (header, payload) = assemble(&mut a, &load(name))?.expect("complete message");
    let payload: &'static [u8] = Box::leak(payload.into_boxed_slice());
    parse_reply(request, &Message { header, payload })
}

#[test]
fn valid_fixtures_decode() {
    assert_eq!(
        reply("valid-read-reply.bin", MsgType::Read),
        Ok(Reply::Value(b"0"))
    );
    assert_eq!(reply("valid-write-ok.bin", MsgType::Write), Ok(Reply::Ok));
    assert_eq!(
        reply("valid-transaction-start.bin", MsgType::TransactionStart),
        Ok(Reply::TransactionId(12))
    );
    assert_eq!(
        reply("valid-error-enoent.bin", MsgType::Read),
        Err(WireError::Xs(XsError::NoEnt))
    );
    match reply("valid-directory-reply.bin", MsgType::Directory) {
        Ok(Reply::Directory(d)) => {
            let names: Vec<&[u8]> = d.collect();
            assert_eq!(names, [&b"name"[..], b"domid", b"data"]);
        }
        other => panic!("{other:?}"),
    }
    let mut a = Assembler::default();
    let (header, payload) = assemble(&mut a, &load("valid-watch-event.bin"))
        .unwrap()
        .unwrap();
    let ev = WatchEvent::parse(&Message {
        header,
        payload: &payload,
    })
    .unwrap();
    assert_eq!((ev.path, ev.token), (&b"data/depmig/k"[..], &b"tok1"[..]));
}

#[test]
fn malformed_fixtures_are_typed_errors() {
    let mut a = Assembler::default();
    assert_eq!(
        assemble(&mut a, &load("bad-oversized-header.bin")),
        Err(WireError::TooLong { len: 4097 })
    );
    // Truncated input never yields a message.
    for name in ["bad-truncated-header.bin", "bad-truncated-payload.bin"] {
        let mut a = Assembler::default();
        assert_eq!(assemble(&mut a, &load(name)), Ok(None), "{name}");
    }
    assert_eq!(
        reply("bad-directory-no-nul.bin", MsgType::Directory),
        Err(WireError::Malformed)
    );
    assert_eq!(
        reply("bad-transaction-id.bin", MsgType::TransactionStart),
        Err(WireError::BadNumber)
    );
    assert_eq!(
        reply("bad-write-reply.bin", MsgType::Write),
        Err(WireError::Malformed)
    );
    assert_eq!(
        reply("valid-read-reply.bin", MsgType::Write),
        Err(WireError::UnexpectedType {
            expected: 11,
            got: 2
        })
    );
    let mut a = Assembler::default();
    let (header, payload) = assemble(&mut a, &load("bad-watch-event-no-token.bin"))
        .unwrap()
        .unwrap();
    assert_eq!(
        WatchEvent::parse(&Message {
            header,
            payload: &payload
        }),
        Err(WireError::Malformed)
    );
    assert!(Directory::new(b"x").is_err());
}
