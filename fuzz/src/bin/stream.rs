//! afl.rs entry point of the `stream` target; the harness is
//! `depmig_fuzz::stream::run`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::stream::run(data);
    });
}
