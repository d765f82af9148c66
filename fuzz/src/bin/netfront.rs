//! afl.rs entry point of the `netfront` target; the harness is
//! `depmig_fuzz::netfront::run`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::netfront::run(data);
    });
}
