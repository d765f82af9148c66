//! Edits of an HVM context blob (`XEN_DOMCTL_gethvmcontext`'s output): a
//! sequence of records, each a `hvm_save_descriptor` (typecode u16,
//! instance u16, length u32, little-endian) followed by `length` bytes,
//! ending with the END record (typecode 0).
//!
//! The source appliance cancels a guest's suspend after a failed
//! migration the way Xen's toolstack does: vCPU 0's `rax` (the suspend
//! hypercall's return value) becomes 1, the context is loaded back, the
//! domain resumed. This module does the portable part.

/// Size of a `hvm_save_descriptor`.
pub const DESC_LEN: usize = 8;
/// Typecode of the END record.
pub const CODE_END: u16 = 0;
/// Typecode of the per-vCPU CPU record (`struct hvm_hw_cpu`).
pub const CODE_CPU: u16 = 2;
/// Offset of `rax` in `struct hvm_hw_cpu` (after the 512-byte FPU area).
pub const CPU_RAX_OFFSET: usize = 512;

/// Why a blob could not be edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvmCtxError {
    /// A record runs past the end of the blob.
    Truncated,
    /// No CPU record for that vCPU before END.
    NoSuchVcpu(u16),
    /// The CPU record is too short to hold `rax`.
    ShortCpuRecord,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Sets `rax` of vCPU `vcpu`'s CPU record in `blob`.
pub fn set_vcpu_rax(blob: &mut [u8], vcpu: u16, rax: u64) -> Result<(), HvmCtxError> {
    let mut off = 0usize;
    // Every iteration advances by at least DESC_LEN bytes: bounded by the blob.
    while off < blob.len() {
        let code = le16(blob, off).ok_or(HvmCtxError::Truncated)?;
        let inst = le16(blob, off + 2).ok_or(HvmCtxError::Truncated)?;
        let len = le32(blob, off + 4).ok_or(HvmCtxError::Truncated)? as usize;
        let data = off + DESC_LEN;
        let next = data.checked_add(len).ok_or(HvmCtxError::Truncated)?;
        if next > blob.len() {
            return Err(HvmCtxError::Truncated);
        }
        if code == CODE_END {
            break;
        }
        if code == CODE_CPU && inst == vcpu {
            if len < CPU_RAX_OFFSET + 8 {
                return Err(HvmCtxError::ShortCpuRecord);
            }
            let at = data + CPU_RAX_OFFSET;
            let slot = blob
                .get_mut(at..at + 8)
                .ok_or(HvmCtxError::ShortCpuRecord)?;
            slot.copy_from_slice(&rax.to_le_bytes());
            return Ok(());
        }
        off = next;
    }
    Err(HvmCtxError::NoSuchVcpu(vcpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(code: u16, inst: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&code.to_le_bytes());
        v.extend_from_slice(&inst.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn sets_rax_of_the_right_vcpu() {
        let mut blob = rec(1, 0, &[0xaa; 24]);
        blob.extend(rec(CODE_CPU, 0, &[0x11; 1024]));
        blob.extend(rec(CODE_CPU, 1, &[0x22; 1024]));
        blob.extend(rec(CODE_END, 0, &[]));
        let orig = blob.clone();
        set_vcpu_rax(&mut blob, 1, 1).unwrap();
        let at = 8 + 24 + 8 + 1024 + 8 + CPU_RAX_OFFSET;
        assert_eq!(&blob[at..at + 8], &1u64.to_le_bytes());
        let changed = blob.iter().zip(&orig).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 8);
        assert_eq!(
            set_vcpu_rax(&mut blob, 7, 1),
            Err(HvmCtxError::NoSuchVcpu(7))
        );
    }

    #[test]
    fn malformed_blobs_are_errors() {
        let mut short = rec(CODE_CPU, 0, &[0; 100]);
        assert_eq!(
            set_vcpu_rax(&mut short, 0, 1),
            Err(HvmCtxError::ShortCpuRecord)
        );
        let mut trunc = rec(CODE_CPU, 0, &[0; 600]);
        trunc.truncate(300);
        assert_eq!(set_vcpu_rax(&mut trunc, 0, 1), Err(HvmCtxError::Truncated));
        let mut huge = rec(5, 0, &[]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(set_vcpu_rax(&mut huge, 0, 1), Err(HvmCtxError::Truncated));
        assert_eq!(
            set_vcpu_rax(&mut [1, 2, 3], 0, 1),
            Err(HvmCtxError::Truncated)
        );
    }
}
