//! The Linux error numbers dom0 names: the failures it reports itself on
//! the dom0 bitmap route (see [`crate::bitmap`] for what each means there),
//! and the refusals the hypervisor or the kernel answer with.

/// `EPERM`: the operation is not permitted.
pub const EPERM: i32 = 1;
/// `EIO`: a failure that carried no error number.
pub const EIO: i32 = 5;
/// `EACCES`: permission denied (a domctl the hypervisor refuses).
pub const EACCES: i32 = 13;
/// `EINVAL`: an invalid argument; on the dom0 bitmap route, a malformed or
/// refused `bitmap` or request.
pub const EINVAL: i32 = 22;
/// `ENOSYS`: dom0 has no hypercalls to serve the route with.
pub const ENOSYS: i32 = 38;
/// `EOPNOTSUPP`: the source appliance was armed `direct`.
pub const EOPNOTSUPP: i32 = 95;
/// `ECANCELED`: the migration ended before the request was served.
pub const ECANCELED: i32 = 125;
