//! Synthetic `xl migrate` streams shaped like Xen 4.17's, for tests of the
//! observer and of `migpipe` (the page contents are filler).

use crate::xlstream::{LIBXC_ID, LIBXC_MARKER, LIBXL_IDENT, MAX_BATCH_PFNS, XL_MAGIC};

const LIBXL_LIBXC_CONTEXT: u32 = 1;
const LIBXL_END: u32 = 0;
const LIBXC_END: u32 = 0;
const LIBXC_PAGE_DATA: u32 = 1;

/// Builds synthetic streams shaped like 4.17's.
pub struct Builder {
    /// The stream built so far.
    pub out: Vec<u8>,
}

impl Builder {
    /// xl's header with a short config, then libxl's header.
    pub fn xl() -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(XL_MAGIC);
        let cfg = b"name = \"guest\"\n";
        for v in [0x0102_0304u32, 1, 0, cfg.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(cfg);
        out.extend_from_slice(&LIBXL_IDENT.to_be_bytes());
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        Self { out }
    }
    /// One record (libxl or libxc framing: type, length, body padded to 8).
    pub fn rec(&mut self, ty: u32, body: &[u8]) {
        self.out.extend_from_slice(&ty.to_le_bytes());
        self.out
            .extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.out.extend_from_slice(body);
        let pad = (8 - body.len() % 8) % 8;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }
    /// LIBXC_CONTEXT, libxc's image and domain headers and the static records.
    pub fn libxc_start(&mut self) {
        self.rec(LIBXL_LIBXC_CONTEXT, &[]);
        self.out.extend_from_slice(&LIBXC_MARKER.to_be_bytes());
        self.out.extend_from_slice(&LIBXC_ID.to_be_bytes());
        self.out.extend_from_slice(&3u32.to_be_bytes());
        self.out.extend_from_slice(&[0u8; 8]);
        self.out.extend_from_slice(&2u32.to_le_bytes());
        self.out.extend_from_slice(&12u16.to_le_bytes());
        self.out.extend_from_slice(&[0u8; 2]);
        self.out.extend_from_slice(&4u32.to_le_bytes());
        self.out.extend_from_slice(&17u32.to_le_bytes());
        self.rec(0x8000_0011, &[1, 2, 3]);
        self.rec(0x10, &[]);
    }
    /// One round over `pfns`, batched like send_dirty_pages; pfns whose
    /// value is a multiple of 7 are holes (XTAB) without data.
    pub fn round(&mut self, pfns: &[u64]) {
        for batch in pfns.chunks(MAX_BATCH_PFNS as usize) {
            let mut body = Vec::new();
            body.extend_from_slice(&(batch.len() as u32).to_le_bytes());
            body.extend_from_slice(&0u32.to_le_bytes());
            let mut pages = 0;
            for &p in batch {
                let ty: u64 = if p % 7 == 0 { 0xf } else { 0 };
                body.extend_from_slice(&((ty << 60) | p).to_le_bytes());
                pages += usize::from(ty == 0);
            }
            for i in 0..pages {
                body.extend(std::iter::repeat_n(i as u8, 4096));
            }
            self.rec(LIBXC_PAGE_DATA, &body);
        }
    }
    /// End-of-checkpoint records, libxc END, libxl END and xl's "go" message.
    pub fn finish(&mut self) {
        self.rec(8, &[0u8; 24]);
        self.rec(9, &[5u8; 100]);
        self.rec(LIBXC_END, &[]);
        self.rec(LIBXL_END, &[]);
        self.out
            .extend_from_slice(b"domain is yours, you are cleared to unpause");
    }
}
