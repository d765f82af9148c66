//! The platform the roles run on: the x86 PVH entry and traps (`arch`), the
//! Xen interfaces (`xen`), the console, the clock, the heap, the boot
//! information and the fatal path (`fail`, `rt`). Nothing here knows a mode
//! or a migration; the modes (`selftest`, `net`, `migrate`, …) sit beside
//! this module and use it.

pub mod arch;
pub mod boot_info;
pub mod clock;
pub mod console;
pub mod fail;
pub mod heap;
pub mod rt;
pub mod xen;
