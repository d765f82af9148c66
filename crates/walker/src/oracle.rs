//! The dependency oracle over a Linux guest: the taint table and kernel
//! profile the agent published, the walker's classification, and the
//! agent's freezer behind a small control port.

use depmig_precopy::{CensusCounts, DependencyOracle, DirtyBitmap, PortError};

use crate::census::{census, Census};
use crate::classify::{classify, Classification, Limits};
use crate::error::WalkError;
use crate::free::free_among;
use crate::kernel::Kernel;
use crate::mem::{PhysMem, PAGE_SIZE};
use crate::profile::KernelProfile;
use crate::taint::TaintTable;

/// The agent's freezer, as the appliance reaches it (xenstore
/// `data/depmig/request` and `status`).
pub trait GroupControl {
    /// Asks the agent to freeze quiet untainted groups; returns how many.
    fn freeze(&mut self) -> Result<u32, PortError>;
    /// Asks the agent to thaw every group frozen for the migration.
    fn thaw_all(&mut self) -> Result<(), PortError>;
}

/// A [`DependencyOracle`] reading a Linux guest.
///
/// Walk failures never fail the migration: the oracle answers "everything
/// tainted" or "nothing free" and keeps the error in
/// [`LinuxOracle::last_error`].
pub struct LinuxOracle<M: PhysMem, C: GroupControl> {
    mem: M,
    control: C,
    table_gfn: u64,
    limits: Limits,
    last_error: Option<WalkError>,
    last: Option<Classification>,
    last_census: Option<(u32, Result<Census, WalkError>)>,
}

/// Everything the oracle needs from one read of the guest.
struct View {
    table: TaintTable,
    profile: KernelProfile,
}

impl<M: PhysMem, C: GroupControl> LinuxOracle<M, C> {
    /// An oracle for the guest whose taint table header is frame
    /// `table_gfn` (xenstore `data/depmig/table-gfn`).
    pub fn new(mem: M, control: C, table_gfn: u64) -> Self {
        let limits = Limits::for_guest(mem.nr_pfns());
        LinuxOracle {
            mem,
            control,
            table_gfn,
            limits,
            last_error: None,
            last: None,
            last_census: None,
        }
    }

    /// Replaces the work bounds.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The error of the last walk that fell back to the safe answer.
    pub fn last_error(&self) -> Option<WalkError> {
        self.last_error
    }

    /// The last census taken ([`DependencyOracle::census`]) and its round.
    pub fn last_census(&self) -> Option<&(u32, Result<Census, WalkError>)> {
        self.last_census.as_ref()
    }

    /// The census of the frames of `asked` now.
    pub fn census_now(&self, asked: &DirtyBitmap) -> Result<Census, WalkError> {
        let v = self.view()?;
        let k = Kernel::new(&self.mem, &v.profile)?;
        census(&k, Some(&v.table), &self.limits, asked)
    }

    /// The last successful classification (for statistics).
    pub fn last_classification(&self) -> Option<&Classification> {
        self.last.as_ref()
    }

    fn view(&self) -> Result<View, WalkError> {
        let table = TaintTable::read(&self.mem, self.table_gfn)?;
        let gfn = table
            .profile_gfn()
            .ok_or(WalkError::Taint(crate::taint::TaintError::BadGeometry))?;
        let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
        self.mem
            .read(gfn * PAGE_SIZE, &mut page)
            .map_err(|e| WalkError::Mem(e, gfn * PAGE_SIZE))?;
        let profile = KernelProfile::parse(&page)?;
        Ok(View { table, profile })
    }

    /// Classifies the guest's frames now.
    pub fn classify_now(&self) -> Result<Classification, WalkError> {
        let v = self.view()?;
        let k = Kernel::new(&self.mem, &v.profile)?;
        classify(&k, Some(&v.table), &self.limits)
    }

    /// Frames proven free and not in use by anything the walker can see
    /// (user mappings, page tables, the taint table itself).
    pub fn free_now(&self) -> Result<DirtyBitmap, WalkError> {
        let mut all = DirtyBitmap::new(self.mem.nr_pfns());
        all.set_all();
        self.free_among_now(&all, None)
    }

    /// The frames of `among` proven free, as [`LinuxOracle::free_now`], read
    /// with [`free_among`] (only the descriptors that can decide them when
    /// `among` is small). The user-mapped and page-table frames excluded
    /// are `known`'s when given, else a classification made now: in a
    /// consistent kernel the descriptors already exclude both (a mapped
    /// page's `_mapcount` and a page table's `page_type` are not -1), so
    /// the exclusion is a second line against a kernel whose descriptors
    /// lie, and one from an earlier walk serves it (round 1's, in a
    /// dependency-aware migration, which walks for taint only then).
    pub fn free_among_now(
        &self,
        among: &DirtyBitmap,
        known: Option<&Classification>,
    ) -> Result<DirtyBitmap, WalkError> {
        let v = self.view()?;
        let k = Kernel::new(&self.mem, &v.profile)?;
        let mut free = free_among(&k, among).free;
        let fresh;
        let c = match known {
            Some(c) => c,
            None => {
                fresh = classify(&k, Some(&v.table), &self.limits)?;
                &fresh
            }
        };
        free.and_not_with(&c.mapped);
        free.and_not_with(&c.page_tables);
        for &f in &v.table.frames {
            free.clear(f);
        }
        Ok(free)
    }
}

impl<M: PhysMem, C: GroupControl> DependencyOracle for LinuxOracle<M, C> {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        self.control.freeze()
    }

    fn thaw_all(&mut self) -> Result<(), PortError> {
        self.control.thaw_all()
    }

    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        out.set_all();
        match self.classify_now() {
            Ok(c) => {
                c.untainted.for_each_one(|pfn| out.clear(pfn));
                self.last = Some(c);
            }
            Err(e) => self.last_error = Some(e),
        }
        Ok(())
    }

    fn census(
        &mut self,
        round: u32,
        frames: &DirtyBitmap,
    ) -> Result<Option<CensusCounts>, PortError> {
        let c = self.census_now(frames);
        let counts = c.as_ref().ok().map(|c| c.counts(round));
        self.last_census = Some((round, c));
        Ok(counts)
    }

    fn free_frames(&mut self, among: &DirtyBitmap, out: &mut DirtyBitmap) -> Result<(), PortError> {
        out.clear_all();
        match self.free_among_now(among, self.last.as_ref()) {
            Ok(free) => free.for_each_one(|pfn| {
                out.set(pfn);
            }),
            Err(e) => self.last_error = Some(e),
        }
        Ok(())
    }
}
