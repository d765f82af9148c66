//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): struct
//! sizes, member offsets, array lengths and enumerator values, which is
//! all the kernel profile needs.

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
    /// The member is not an array.
    NotArray,
    /// No enum of that name.
    NoEnum,
    /// The enum has no enumerator of that name.
    NoEnumerator,
}

impl std::fmt::Display for BtfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BtfError::Malformed => f.write_str("malformed BTF"),
            BtfError::UnknownKind(k) => write!(f, "BTF type of unknown kind {k}"),
            BtfError::NoStruct => f.write_str("struct not found in BTF"),
            BtfError::NoMember => f.write_str("member not found in BTF"),
            BtfError::NotArray => f.write_str("member is not an array in BTF"),
            BtfError::NoEnum => f.write_str("enum not found in BTF"),
            BtfError::NoEnumerator => f.write_str("enumerator not found in BTF"),
        }
    }
}

const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

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
    /// An enum's (name offset, value), signed or not as its kflag says.
    enumerators: Vec<(u32, i64)>,
    /// An array's element count.
    nelems: u32,
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
            let mut enumerators = Vec::new();
            let mut nelems = 0;
            let extra = match kind {
                0 | 2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
                1 | 14 | 17 => 4,
                KIND_ARRAY => {
                    nelems = u32_at(tsec, off + 8)?;
                    12
                }
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
                KIND_ENUM => {
                    for i in 0..vlen {
                        let e = off + 8 * i;
                        let raw = u32_at(tsec, e + 4)?;
                        let val = if kflag {
                            i64::from(raw as i32)
                        } else {
                            i64::from(raw)
                        };
                        enumerators.push((u32_at(tsec, e)?, val));
                    }
                    8 * vlen
                }
                KIND_ENUM64 => {
                    for i in 0..vlen {
                        let e = off + 12 * i;
                        let raw =
                            u64::from(u32_at(tsec, e + 4)?) | u64::from(u32_at(tsec, e + 8)?) << 32;
                        // Values beyond i64 (unsigned enums above 2^63) are
                        // kept as their bit pattern; no caller asks for one.
                        enumerators.push((u32_at(tsec, e)?, raw as i64));
                    }
                    12 * vlen
                }
                13 => 8 * vlen,
                15 => 12 * vlen,
                k => return Err(BtfError::UnknownKind(k)),
            };
            off = off.checked_add(extra).ok_or(BtfError::Malformed)?;
            types.push(Type {
                kind,
                name_off,
                size,
                members,
                enumerators,
                nelems,
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
            .map(|(bits, _)| bits / 8)
            .ok_or(BtfError::NoMember)
    }

    /// Element count of the array `member` of `struct name` (through
    /// typedefs and qualifiers).
    pub fn member_array_len(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = self.struct_id(name)?;
        let (_, ty) = self
            .find_member(id, member.as_bytes(), 0)
            .ok_or(BtfError::NoMember)?;
        match self.ty(self.resolve(ty)) {
            Some(t) if t.kind == KIND_ARRAY => Ok(t.nelems),
            _ => Err(BtfError::NotArray),
        }
    }

    /// Whether the BTF has an enum (32- or 64-bit) named `name`.
    pub fn has_enum(&self, name: &str) -> bool {
        self.enum_type(name).is_some()
    }

    /// Value of `enumerator` in `enum name`.
    pub fn enumerator(&self, name: &str, enumerator: &str) -> Result<i64, BtfError> {
        let t = self.enum_type(name).ok_or(BtfError::NoEnum)?;
        t.enumerators
            .iter()
            .find(|(n, _)| self.name(*n) == enumerator.as_bytes())
            .map(|(_, v)| *v)
            .ok_or(BtfError::NoEnumerator)
    }

    fn enum_type(&self, name: &str) -> Option<&Type> {
        self.types.iter().find(|t| {
            matches!(t.kind, KIND_ENUM | KIND_ENUM64) && self.name(t.name_off) == name.as_bytes()
        })
    }

    /// The bit offset and type id of `member` in type `id`.
    fn find_member(&self, id: u32, member: &[u8], depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        let t = self.ty(id)?;
        for m in &t.members {
            if self.name(m.name_off) == member {
                return Some((m.bit_off, m.type_id));
            }
        }
        for m in &t.members {
            if m.name_off == 0 {
                let inner = self.resolve(m.type_id);
                if matches!(
                    self.ty(inner).map(|t| t.kind),
                    Some(KIND_STRUCT | KIND_UNION)
                ) {
                    if let Some((o, ty)) = self.find_member(inner, member, depth + 1) {
                        return Some((m.bit_off.checked_add(o)?, ty));
                    }
                }
            }
        }
        None
    }
}

/// Builds small BTF blobs for tests: the kernel's types, only the ones a
/// test needs.
#[cfg(test)]
pub(crate) mod build {
    /// A BTF blob under construction; type ids count from 1.
    pub struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next: u32,
    }

    impl BtfBuilder {
        pub fn new() -> Self {
            BtfBuilder {
                types: Vec::new(),
                strings: vec![0],
                next: 1,
            }
        }

        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn words(&mut self, w: &[u32]) {
            for v in w {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
        }

        fn head(&mut self, name: &str, kind: u32, vlen: u32, size: u32, kflag: bool) -> u32 {
            let n = self.str(name);
            let info = (u32::from(kflag) << 31) | (kind << 24) | vlen;
            self.words(&[n, info, size]);
            self.next += 1;
            self.next - 1
        }

        /// An unsigned integer type of `size` bytes.
        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.head(name, 1, 0, size, false);
            self.words(&[size * 8]);
            id
        }

        /// An array of `nelems` elements of type `elem`, indexed by `index`.
        pub fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
            let id = self.head("", 3, 0, 0, false);
            self.words(&[elem, index, nelems]);
            id
        }

        /// A struct (or union) of `size` bytes with (name, type, byte
        /// offset) members; an empty name is an anonymous member.
        pub fn record(
            &mut self,
            union: bool,
            name: &str,
            size: u32,
            m: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.head(name, if union { 5 } else { 4 }, m.len() as u32, size, false);
            for &(mn, ty, off) in m {
                let n = self.str(mn);
                self.words(&[n, ty, off * 8]);
            }
            id
        }

        /// A 32-bit enum.
        pub fn enumeration(&mut self, name: &str, e: &[(&str, i32)]) -> u32 {
            let id = self.head(name, 6, e.len() as u32, 4, true);
            for &(en, v) in e {
                let n = self.str(en);
                self.words(&[n, v as u32]);
            }
            id
        }

        /// A typedef of `ty`.
        pub fn typedef(&mut self, name: &str, ty: u32) -> u32 {
            self.head(name, 8, 0, ty, false)
        }

        /// The blob: header, types, strings.
        pub fn blob(&self) -> Vec<u8> {
            let mut b = vec![0x9f, 0xeb, 1, 0];
            let tl = self.types.len() as u32;
            for v in [24u32, 0, tl, tl, self.strings.len() as u32] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&self.types);
            b.extend_from_slice(&self.strings);
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::BtfBuilder;
    use super::*;

    #[test]
    fn arrays_and_enums_of_a_built_blob() {
        let mut b = BtfBuilder::new();
        let int = b.int("unsigned int", 4);
        let ulong = b.int("long unsigned int", 8);
        let fa = b.record(false, "free_area", 16, &[("nr_free", ulong, 0)]);
        let arr = b.array(fa, int, 11);
        let tarr = b.typedef("free_areas_t", arr);
        let inner = b.record(false, "", 8, &[("spanned", ulong, 0)]);
        b.record(
            false,
            "zone",
            200,
            &[
                ("", inner, 0),
                ("free_area", arr, 8),
                ("typed", tarr, 184),
                ("nr", ulong, 192),
            ],
        );
        b.enumeration(
            "pagetype",
            &[("PGTY_buddy", 0xf0), ("PGTY_mapcount_underflow", 0xff)],
        );
        b.enumeration("negative", &[("MINUS_ONE", -1)]);
        let btf = Btf::parse(&b.blob()).unwrap();
        assert_eq!(btf.member_array_len("zone", "free_area"), Ok(11));
        assert_eq!(btf.member_array_len("zone", "typed"), Ok(11));
        assert_eq!(btf.member_array_len("zone", "nr"), Err(BtfError::NotArray));
        assert_eq!(
            btf.member_array_len("zone", "none"),
            Err(BtfError::NoMember)
        );
        assert_eq!(btf.member_offset("zone", "spanned"), Ok(0));
        assert_eq!(btf.member_offset("zone", "free_area"), Ok(8));
        assert!(btf.has_enum("pagetype"));
        assert!(!btf.has_enum("pageflags"));
        assert_eq!(btf.enumerator("pagetype", "PGTY_buddy"), Ok(0xf0));
        assert_eq!(
            btf.enumerator("pagetype", "PGTY_table"),
            Err(BtfError::NoEnumerator)
        );
        assert_eq!(
            btf.enumerator("pageflags", "PG_locked"),
            Err(BtfError::NoEnum)
        );
        assert_eq!(btf.enumerator("negative", "MINUS_ONE"), Ok(-1));
    }

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
                let _ = btf.member_array_len("zone", "free_area");
                let _ = btf.enumerator("pagetype", "PGTY_buddy");
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
        // x86-64: 11 free lists (orders 0..=10) since 2.6.
        assert_eq!(btf.member_array_len("zone", "free_area"), Ok(11));
        assert_eq!(btf.enumerator("pageflags", "PG_locked"), Ok(0));
    }
}
