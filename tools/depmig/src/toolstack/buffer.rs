//! The source appliance's bitmap buffer as dom0 takes it for the dom0
//! bitmap route (see [`crate::bitmap`]): the contract's layout, held to the
//! guest dom0 migrates. It is part of the host boundary because
//! [`super::Toolstack::logdirty_clean_into`] has Xen write into it.

use std::fmt;

use depmig_control::bitmap_route::{self, RouteError};

// dom0 maps the buffer by privcmd's count of a frame's bits, the appliance
// sizes it by the contract's: they must agree.
const _: () = assert!(depmig_privcmd::BITMAP_PAGES_PER_FRAME == bitmap_route::PAGES_PER_FRAME);
// A taken buffer's frame count is handed to privcmd as a `u32`.
const _: () = assert!(bitmap_route::MAX_FRAMES <= u32::MAX as u64);

/// Why dom0 refuses a `bitmap` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// The key breaks the contract ([`bitmap_route::Buffer::parse`]).
    Layout(RouteError),
    /// `pages` is more than the guest's frame count.
    LargerThanGuest {
        /// The pages asked for.
        pages: u64,
        /// The guest's frames as Xen reports them.
        guest: u64,
    },
}

impl fmt::Display for BufferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The contract's message is for any key; this one is `bitmap`.
            BufferError::Layout(RouteError::Malformed) => f.write_str(
                "not `<first_gfn> <frames> <pages>` in canonical decimal, single spaces",
            ),
            BufferError::Layout(e) => e.fmt(f),
            BufferError::LargerThanGuest { pages, guest } => {
                write!(f, "{pages} pages, more than the guest's {guest} frames")
            }
        }
    }
}

impl std::error::Error for BufferError {}

/// The source appliance's bitmap buffer as dom0 took it: the contract's
/// [`bitmap_route::Buffer`], held to the guest dom0 migrates; only
/// [`GuestBuffer::parse`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBuffer(bitmap_route::Buffer);

impl GuestBuffer {
    /// Reads a `bitmap` key for a guest of `guest_frames` frames.
    pub fn parse(text: &str, guest_frames: u64) -> Result<GuestBuffer, BufferError> {
        let b = bitmap_route::Buffer::parse(text).map_err(BufferError::Layout)?;
        if b.pages > guest_frames {
            return Err(BufferError::LargerThanGuest {
                pages: b.pages,
                guest: guest_frames,
            });
        }
        Ok(GuestBuffer(b))
    }

    /// The appliance's frame number of the buffer's first frame.
    pub fn first_gfn(&self) -> u64 {
        self.0.first_gfn
    }

    /// How many consecutive frames the buffer spans.
    pub fn frames(&self) -> u32 {
        // At most MAX_FRAMES (the contract's check), which fits (asserted
        // above): the fallback never applies.
        u32::try_from(self.0.frames).unwrap_or(u32::MAX)
    }

    /// How many guest frames (bits) the bitmap covers.
    pub fn pages(&self) -> u64 {
        self.0.pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 512 MiB PVH guest's frames: up to its special pages below 4 GiB.
    const GUEST_FRAMES: u64 = 0xff000;

    #[test]
    fn a_buffer_is_taken_as_the_appliance_writes_it() {
        let b = GuestBuffer::parse("4096 32 1044480", GUEST_FRAMES).unwrap();
        assert_eq!(
            (b.first_gfn(), b.frames(), b.pages()),
            (4096, 32, 1_044_480)
        );
        // Exactly the guest's frames, and fewer.
        assert!(GuestBuffer::parse("4096 32 1044480", 1_044_480).is_ok());
        assert_eq!(
            GuestBuffer::parse("0 1 1", GUEST_FRAMES).unwrap().frames(),
            1
        );
        assert_eq!(
            GuestBuffer::parse("7 2 32769", GUEST_FRAMES)
                .unwrap()
                .frames(),
            2,
            "a partial last frame counts"
        );
        // The largest buffer: 16 MiB of bitmap at the top of the range.
        let top = u64::MAX - bitmap_route::MAX_FRAMES;
        let b = GuestBuffer::parse(&format!("{top} 4096 134217728"), u64::MAX).unwrap();
        assert_eq!(u64::from(b.frames()), bitmap_route::MAX_FRAMES);
    }

    #[test]
    fn each_hostile_buffer_is_refused_for_its_own_reason() {
        let refused = |t: &str| GuestBuffer::parse(t, GUEST_FRAMES).unwrap_err();
        for malformed in [
            "",
            "4096 32",
            "4096 32 1044480 1",
            "4096  32 1044480",
            "4096\t32\t1044480",
            "0x1000 32 1044480",
            "4096 032 1044480",
            "-1 32 1044480",
            "4096 32 1044480 ",
            "18446744073709551616 32 1044480",
        ] {
            assert_eq!(
                refused(malformed),
                BufferError::Layout(RouteError::Malformed),
                "{malformed:?}"
            );
        }
        assert_eq!(
            refused("4096 0 0"),
            BufferError::Layout(RouteError::NoPages)
        );
        assert_eq!(
            refused("4096 1 0"),
            BufferError::Layout(RouteError::NoPages)
        );
        assert_eq!(
            refused("4096 4097 134250000"),
            BufferError::Layout(RouteError::TooManyFrames { frames: 4097 })
        );
        assert_eq!(
            refused("4096 18446744073709551615 1044480"),
            BufferError::Layout(RouteError::TooManyFrames { frames: u64::MAX })
        );
        assert_eq!(
            refused("4096 33 1044480"),
            BufferError::Layout(RouteError::WrongFrames {
                frames: 33,
                need: 32
            })
        );
        assert_eq!(
            refused("4096 31 1044480"),
            BufferError::Layout(RouteError::WrongFrames {
                frames: 31,
                need: 32
            })
        );
        assert_eq!(
            refused("18446744073709551615 32 1044480"),
            BufferError::Layout(RouteError::Overflow)
        );
        assert_eq!(
            refused("18446744073709551584 32 1044480"),
            BufferError::Layout(RouteError::Overflow),
            "one frame past the end"
        );
        assert_eq!(
            refused("4096 32 1044481"),
            BufferError::LargerThanGuest {
                pages: 1_044_481,
                guest: GUEST_FRAMES
            }
        );
        // The guest's memory size is no bound: its address space is.
        assert_eq!(
            GuestBuffer::parse("4096 32 1044480", 512 * 256).unwrap_err(),
            BufferError::LargerThanGuest {
                pages: 1_044_480,
                guest: 131_072
            }
        );
    }
}
