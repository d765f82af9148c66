//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): struct
//! sizes and member offsets, which is all the kernel profile needs.

/// Errors reading BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BtfError {
    /// The blob is shorter than its header says or has no BTF magic.
    Malformed,
    /// A type of an unknown kind (newer BTF than this reader knows).
    UnknownKind(u32),
    /// No struct of that name.
    NoStruct,
    /// The struct has no member of that name (also inside anonymous members).
    NoMember,
}

impl std::fmt::Display for BtfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BtfError::Malformed => f.write_str("malformed BTF"),
            BtfError::UnknownKind(k) => write!(f, "BTF type of unknown kind {k}"),
            BtfError::NoStruct => f.write_str("struct not found in BTF"),
            BtfError::NoMember => f.write_str("member not found in BTF"),
        }
    }
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

#[derive(Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_off: u32,
}

struct Type {
    kind: u32,
    name_off: u32,
    size: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types (id 1 is `types[0]`) and the string section.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    let s = b
        .get(off..off.checked_add(4).ok_or(BtfError::Malformed)?)
        .ok_or(BtfError::Malformed)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(s);
    Ok(u32::from_le_bytes(w))
}

impl Btf {
    /// Parses a raw BTF blob (little endian).
    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        if b.get(0..2) != Some(&[0x9f, 0xeb][..]) {
            return Err(BtfError::Malformed);
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let type_off = u32_at(b, 8)? as usize;
        let type_len = u32_at(b, 12)? as usize;
        let str_off = u32_at(b, 16)? as usize;
        let str_len = u32_at(b, 20)? as usize;
        let tstart = hdr_len.checked_add(type_off).ok_or(BtfError::Malformed)?;
        let tend = tstart.checked_add(type_len).ok_or(BtfError::Malformed)?;
        let sstart = hdr_len.checked_add(str_off).ok_or(BtfError::Malformed)?;
        let send = sstart.checked_add(str_len).ok_or(BtfError::Malformed)?;
        let tsec = b.get(tstart..tend).ok_or(BtfError::Malformed)?;
        let strings = b.get(sstart..send).ok_or(BtfError::Malformed)?.to_vec();
        let mut types = Vec::new();
        let mut off = 0usize;
        while off < tsec.len() {
            let name_off = u32_at(tsec, off)?;
            let info = u32_at(tsec, off + 4)?;
            let size = u32_at(tsec, off + 8)?;
            off += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kflag = info >> 31 != 0;
            let mut members = Vec::new();
            let extra = match kind {
                0 | 2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
                1 | 14 | 17 => 4,
                3 => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = off + 12 * i;
                        let raw = u32_at(tsec, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(tsec, m)?,
                            type_id: u32_at(tsec, m + 4)?,
                            bit_off: if kflag { raw & 0x00ff_ffff } else { raw },
                        });
                    }
                    12 * vlen
                }
                6 | 13 => 8 * vlen,
                15 | 19 => 12 * vlen,
                k => return Err(BtfError::UnknownKind(k)),
            };
            off = off.checked_add(extra).ok_or(BtfError::Malformed)?;
            types.push(Type {
                kind,
                name_off,
                size,
                members,
            });
        }
        Ok(Btf { types, strings })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|c| *c == 0).unwrap_or(rest.len());
        rest.get(..end).unwrap_or(&[])
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// Follows typedefs and qualifiers (bounded) to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t) if matches!(t.kind, 8 | 9 | 10 | 11 | 18) => id = t.size,
                _ => break,
            }
        }
        id
    }

    fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_STRUCT && self.name(t.name_off) == name.as_bytes())
            .map(|i| i as u32 + 1)
            .ok_or(BtfError::NoStruct)
    }

    /// Size in bytes of `struct name`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let id = self.struct_id(name)?;
        self.ty(id).map(|t| t.size).ok_or(BtfError::NoStruct)
    }

    /// Byte offset of `member` in `struct name`, looking inside anonymous
    /// struct and union members.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = self.struct_id(name)?;
        self.find_member(id, member.as_bytes(), 0)
            .map(|bits| bits / 8)
            .ok_or(BtfError::NoMember)
    }

    fn find_member(&self, id: u32, member: &[u8], depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let t = self.ty(id)?;
        for m in &t.members {
            if self.name(m.name_off) == member {
                return Some(m.bit_off);
            }
        }
        for m in &t.members {
            if m.name_off == 0 {
                let inner = self.resolve(m.type_id);
                if matches!(
                    self.ty(inner).map(|t| t.kind),
                    Some(KIND_STRUCT | KIND_UNION)
                ) {
                    if let Some(o) = self.find_member(inner, member, depth + 1) {
                        return Some(m.bit_off + o);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(Btf::parse(&[]).err(), Some(BtfError::Malformed));
        assert_eq!(
            Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).err(),
            Some(BtfError::Malformed)
        );
    }

    #[test]
    fn hostile_blobs_never_panic() {
        // A header claiming types, then pseudo-random type records.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400usize {
            let mut b = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
            let types = len as u32;
            for v in [0u32, types, types, 16] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            for _ in 0..len + 16 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            if let Ok(btf) = Btf::parse(&b) {
                let _ = btf.member_offset("task_struct", "pid");
                let _ = btf.struct_size("page");
            }
        }
    }

    #[test]
    fn reads_the_running_kernel_when_it_has_btf() {
        let Ok(b) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            return; // host without BTF: nothing to check against
        };
        let btf = Btf::parse(&b).unwrap();
        assert_eq!(btf.member_offset("list_head", "next").unwrap(), 0);
        assert_eq!(btf.member_offset("list_head", "prev").unwrap(), 8);
        assert_eq!(btf.struct_size("page").unwrap(), 64);
        assert!(btf.member_offset("task_struct", "tasks").unwrap() > 0);
        // page_type lives in an anonymous union
        assert!(btf.member_offset("page", "flags").is_ok());
        assert_eq!(
            btf.member_offset("page", "no_such_field"),
            Err(BtfError::NoMember)
        );
        assert_eq!(btf.struct_size("no_such_struct"), Err(BtfError::NoStruct));
    }
}
