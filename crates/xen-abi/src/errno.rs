//! Xen's error numbers (`errno.h`); hypercalls return them negated.

/// A hypercall failure: Xen's positive errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenErrno(pub u32);

macro_rules! errnos {
    ($($name:ident = $val:expr,)*) => {
        $( #[doc = concat!("`", stringify!($name), "`")] pub const $name: XenErrno = XenErrno($val); )*
        impl XenErrno {
            /// The symbolic name of a known errno, or `None`.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $( $val => Some(stringify!($name)), )* _ => None }
            }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7,
    ENOEXEC = 8, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
    EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, EISDIR = 21,
    EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOSPC = 28, ESPIPE = 29, EROFS = 30,
    EMLINK = 31, EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36,
    ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39, ENODATA = 61, ETIME = 62,
    EBADMSG = 74, EOVERFLOW = 75, EILSEQ = 84, ERESTART = 85, ENOTSOCK = 88,
    EMSGSIZE = 90, EOPNOTSUPP = 95, EADDRINUSE = 98, EADDRNOTAVAIL = 99,
    ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110,
}

impl XenErrno {
    /// Splits a raw hypercall return value into success or an errno.
    ///
    /// Xen returns `-errno` in `[-4095, -1]`; anything else is a result.
    pub fn check(ret: i64) -> Result<u64, XenErrno> {
        if (-4095..0).contains(&ret) {
            Err(XenErrno(ret.unsigned_abs() as u32))
        } else {
            Ok(ret as u64)
        }
    }
}

impl core::fmt::Display for XenErrno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "errno {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_splits_errors_from_results() {
        assert_eq!(XenErrno::check(0), Ok(0));
        assert_eq!(XenErrno::check(0x40011), Ok(0x40011));
        assert_eq!(XenErrno::check(-22), Err(EINVAL));
        assert_eq!(XenErrno::check(-4095), Err(XenErrno(4095)));
        assert_eq!(XenErrno::check(-4096), Ok((-4096i64) as u64));
        assert_eq!(EINVAL.name(), Some("EINVAL"));
        assert_eq!(XenErrno(4000).name(), None);
    }
}
