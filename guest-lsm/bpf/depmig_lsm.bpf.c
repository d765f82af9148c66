// SPDX-License-Identifier: GPL-2.0-only
/* depmig guest taint tracker: BPF LSM hooks that keep processes in
 * dependency groups (union-find over the mmapable taint table) and taint a
 * group as soon as one of its members touches something outside the guest.
 *
 * Rules (guest-lsm/README.md has the reasoning):
 *  - external (taints the group): inet/inet6/packet/other non-unix sockets
 *    created, connected, accepted, listened, sent or received on; reads and
 *    writes of character devices other than null/zero/full/random/urandom
 *    (ttys, consoles, ...); block devices; writes of regular files on any
 *    filesystem that is not known to be memory-backed or a kernel pseudo
 *    filesystem (that is, persistent storage); shared writable mappings of
 *    such files.
 *  - interaction objects (merge the groups of everyone touching them): pipes
 *    and FIFOs, unix sockets, files on tmpfs/ramfs/hugetlbfs, anonymous-inode
 *    files (eventfd, ...), SysV message queues, shared memory, semaphores.
 *  - processes: a thread (or vfork child) shares its creator's group; a
 *    forked child of a tainted parent or of a parent with shared mappings
 *    joins the parent's group, otherwise it starts a group of its own;
 *    signals and ptrace attach merge sender and target.
 *  - on any doubt (full object map, group ids exhausted, pid beyond the
 *    table, a union-find walk longer than its bound) the group is tainted.
 * Nothing is ever denied: every hook returns 0.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "table.h"

char LICENSE[] SEC("license") = "GPL";

#define DM_OBJ_SLOTS 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dm_table);
} dm_table SEC(".maps");

/* interaction object (kernel pointer) -> group id of its first toucher */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DM_OBJ_SLOTS);
	__type(key, __u64);
	__type(value, __u32);
} dm_objects SEC(".maps");

/* ids of groups whose only member exited without sharing them */
struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, DM_GROUP_SLOTS);
	__type(value, __u32);
} dm_free_groups SEC(".maps");

#define AF_UNIX_ 1
#define MAY_WRITE_ 0x2
#define MAY_APPEND_ 0x8
#define MAP_SHARED_ 0x01
#define PROT_WRITE_ 0x2
#define FMODE_WRITE_ 0x2
#define PTRACE_MODE_ATTACH_ 0x02
#define S_IFMT_ 0170000
#define S_IFSOCK_ 0140000
#define S_IFREG_ 0100000
#define S_IFBLK_ 0060000
#define S_IFCHR_ 0020000
#define S_IFIFO_ 0010000
#define EEXIST_ 17

#define GMASK (DM_GROUP_SLOTS - 1)
#define TMASK (DM_TASK_SLOTS - 1)

/* Mask an index in a way the compiler cannot drop after a range check,
 * so the verifier always sees the bound. */
static __always_inline __u32 gidx(__u32 x)
{
	asm volatile("%0 &= 262143" : "+r"(x));
	return x;
}

static __always_inline __u32 tidx(__u32 x)
{
	asm volatile("%0 &= 32767" : "+r"(x));
	return x;
}

static __always_inline struct dm_table *table(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&dm_table, &zero);
}

static __always_inline __u32 gread(struct dm_table *t, __u32 g)
{
	return *(volatile __u32 *)&t->groups[gidx(g)];
}

/* Marks g as referenced from somewhere else (a merge, an object, a joining
 * task) so that it is never recycled; fails (1) when g was already freed. */
__noinline int dm_acquire(struct dm_table *t, __u32 g)
{
	if (!t)
		return 1;
	for (int i = 0; i < 4; i++) {
		__u32 w = gread(t, g);
		if (w & DM_F_FREED)
			return 1;
		if (w & DM_F_REF)
			return 0;
		if (__sync_val_compare_and_swap(&t->groups[gidx(g)], w, w | DM_F_REF) == w)
			return 0;
	}
	return 1;
}

/* Root of g, halving the path on the way; 0 (the permanently tainted
 * overflow group) when the walk exceeds its bound. */
__noinline __u32 dm_find(struct dm_table *t, __u32 g)
{
	if (!t)
		return 0;
	for (int i = 0; i < DM_MAX_FIND; i++) {
		g = gidx(g);
		__u32 w = gread(t, g);
		__u32 p = w & DM_PARENT_MASK;
		if (p == g)
			return g;
		__u32 pw = gread(t, p);
		__u32 gp = pw & DM_PARENT_MASK;
		if (gp != p)
			__sync_val_compare_and_swap(&t->groups[gidx(g)], w,
						    (w & DM_FLAGS_MASK) | gp);
		g = p;
	}
	__sync_fetch_and_or(&t->h.flags, DM_G_FIND_BOUND);
	return 0;
}

/* Set flag bits on g's group; a frozen group that gets tainted also asks
 * the agent to thaw it. */
__noinline int dm_set_flags(struct dm_table *t, __u32 g, __u32 bits)
{
	if (!t)
		return 0;
	for (int i = 0; i < 4; i++) {
		__u32 r = gidx(dm_find(t, g));
		__u32 old = __sync_fetch_and_or(&t->groups[r], bits);
		if ((old & DM_F_FROZEN) && (bits & DM_F_TAINTED))
			__sync_fetch_and_or(&t->groups[r], DM_F_THAW_REQ);
		if ((gread(t, r) & DM_PARENT_MASK) == r)
			return 0;
		/* r was merged meanwhile: repeat on the new root. */
	}
	return 0;
}

static __always_inline void set_flags(struct dm_table *t, __u32 g, __u32 bits)
{
	dm_set_flags(t, g, bits);
}

static __always_inline void taint(struct dm_table *t, __u32 g)
{
	set_flags(t, g, DM_F_TAINTED);
}

/* Merge the groups of a and b; an interaction that reaches a frozen group
 * taints the result and asks the agent to thaw. */
__noinline int dm_merge(struct dm_table *t, __u32 a, __u32 b)
{
	if (!t)
		return 0;
	for (int i = 0; i < 4; i++) {
		__u32 ra = gidx(dm_find(t, a)), rb = gidx(dm_find(t, b));
		if (ra == rb)
			return 0;
		if (ra > rb) {
			__u32 tmp = ra;
			ra = rb;
			rb = tmp;
		}
		if (dm_acquire(t, ra) || dm_acquire(t, rb))
			break; /* a freed id: be conservative below */
		__u32 wb = gread(t, rb);
		if ((wb & DM_PARENT_MASK) != rb)
			continue;
		if (__sync_val_compare_and_swap(&t->groups[rb], wb,
						(wb & DM_FLAGS_MASK) | ra) != wb)
			continue;
		/* rb is now below ra: carry its flags (read again: later
		 * set_flags calls on rb retry on ra themselves). */
		__u32 fb = gread(t, rb) & DM_FLAGS_MASK;
		__u32 fa = gread(t, ra) & DM_FLAGS_MASK;
		__u32 bits = fb & (DM_F_TAINTED | DM_F_SHARED_MEM | DM_F_THAW_REQ);
		if ((fa | fb) & DM_F_FROZEN)
			bits |= DM_F_TAINTED | DM_F_THAW_REQ;
		if (bits)
			set_flags(t, ra, bits);
		return 0;
	}
	/* Lost every race: be conservative. */
	taint(t, a);
	taint(t, b);
	return 0;
}

static __always_inline void merge(struct dm_table *t, __u32 a, __u32 b)
{
	dm_merge(t, a, b);
}

static __always_inline __u32 alloc_group(struct dm_table *t, __u32 flags)
{
	__u32 id = 0;
	if (bpf_map_pop_elem(&dm_free_groups, &id) == 0 && id != 0 && id < DM_GROUP_SLOTS) {
		t->groups[gidx(id)] = flags | id;
		return id;
	}
	id = __sync_fetch_and_add(&t->h.next_group, 1);
	if (id == 0 || id >= DM_GROUP_SLOTS) {
		__sync_fetch_and_or(&t->h.flags, DM_G_GROUPS_EXHAUSTED);
		return 0;
	}
	t->groups[gidx(id)] = flags | id;
	return id;
}

static __always_inline __u64 task_entry(__u32 g, __u32 tgid)
{
	return ((__u64)(DM_TASK_VALID | tgid) << 32) | g;
}

/* Group of the task pid/tgid, creating one for a task not seen before
 * (threads join their leader). */
__noinline __u32 dm_group_of(struct dm_table *t, __u32 pid, __u32 tgid)
{
	if (!t)
		return 0;
	if (pid >= DM_TASK_SLOTS || tgid >= DM_TASK_SLOTS) {
		__sync_fetch_and_or(&t->h.flags, DM_G_PID_OVERFLOW);
		return 0;
	}
	__u64 want_tag = DM_TASK_VALID | tgid;
	__u64 e = *(volatile __u64 *)&t->tasks[tidx(pid)];
	if ((e >> 32) == want_tag)
		return (__u32)e;
	/* Not seen yet: find or create the leader's group. */
	__u64 le = *(volatile __u64 *)&t->tasks[tidx(tgid)];
	__u32 g;
	if ((le >> 32) == want_tag) {
		g = (__u32)le;
	} else {
		g = alloc_group(t, 0);
		__u64 old = __sync_val_compare_and_swap(&t->tasks[tidx(tgid)], le,
							task_entry(g, tgid));
		if (old != le && (old >> 32) == want_tag) {
			/* someone else created it first: give ours back */
			if (g != 0 && __sync_val_compare_and_swap(&t->groups[gidx(g)], g,
								  DM_F_FREED | g) == g)
				bpf_map_push_elem(&dm_free_groups, &g, 0);
			g = (__u32)old;
		}
	}
	if (pid != tgid) {
		if (dm_acquire(t, g))
			g = 0;
		t->tasks[tidx(pid)] = task_entry(g, tgid);
	}
	return g;
}

/* Table and the current task's group; NULL table when the current task is
 * the agent (its own work is not a dependency) or nothing is set up. */
static __always_inline struct dm_table *current_group(__u32 *g)
{
	struct dm_table *t = table();
	if (!t || t->h.state != 1)
		return 0;
	__u64 pt = bpf_get_current_pid_tgid();
	__u32 tgid = pt >> 32;
	if (tgid == t->h.agent_tgid)
		return 0;
	*g = dm_group_of(t, (__u32)pt, tgid);
	return t;
}

/* Inline: object keys are kernel pointers, which global functions may not
 * take as scalar arguments. */
static __always_inline int dm_touch(struct dm_table *t, __u32 g, __u64 key)
{
	__u32 *og = bpf_map_lookup_elem(&dm_objects, &key);
	if (og) {
		/* Fast path: g and the object's group share an ancestor, so
		 * they already are one group (the common repeated-use case). */
		__u32 o = *og;
		__u32 pg = gread(t, g) & DM_PARENT_MASK, po = gread(t, o) & DM_PARENT_MASK;
		if (o == g || pg == o || po == g || pg == po)
			return 0;
		merge(t, g, o);
		return 0;
	}
	if (dm_acquire(t, g)) {
		taint(t, g);
		return 0;
	}
	__u32 v = g;
	long err = bpf_map_update_elem(&dm_objects, &key, &v, BPF_NOEXIST);
	if (err == 0)
		return 0;
	if (err == -EEXIST_) {
		og = bpf_map_lookup_elem(&dm_objects, &key);
		if (og) {
			merge(t, g, *og);
			return 0;
		}
	}
	__sync_fetch_and_or(&t->h.flags, DM_G_OBJECTS_FULL);
	taint(t, g);
	return 0;
}

static __always_inline void touch(struct dm_table *t, __u32 g, __u64 key)
{
	dm_touch(t, g, key);
}

/* Filesystems whose regular files live only in guest memory: interaction
 * objects, never external. */
static __always_inline int fs_is_memory(unsigned long magic)
{
	return magic == 0x01021994 /* tmpfs, shmem, memfd, devtmpfs */ ||
	       magic == 0x858458f6 /* ramfs (initramfs rootfs) */ ||
	       magic == 0x958458f6 /* hugetlbfs */ ||
	       magic == 0x5345434d /* secretmem */;
}

/* Kernel pseudo filesystems: reading or writing them talks to this kernel,
 * not to the outside. */
static __always_inline int fs_is_pseudo(unsigned long magic)
{
	return magic == 0x9fa0 /* proc */ || magic == 0x62656572 /* sysfs */ ||
	       magic == 0x27e0eb /* cgroup */ || magic == 0x63677270 /* cgroup2 */ ||
	       magic == 0xcafe4a11 /* bpf */ || magic == 0x64626720 /* debugfs */ ||
	       magic == 0x74726163 /* tracefs */ || magic == 0x73636673 /* securityfs */ ||
	       magic == 0x6e736673 /* nsfs */ || magic == 0x62656570 /* configfs */ ||
	       magic == 0x42494e4d /* binfmt_misc */ || magic == 0x50495045 /* pipefs */ ||
	       magic == 0x534f434b /* sockfs */;
}

#define ANON_INODE_MAGIC 0x09041934

/* mem character devices that carry nothing in or out */
static __always_inline int chr_is_benign(__u32 rdev)
{
	__u32 major = rdev >> 20, minor = rdev & 0xfffff;
	return major == 1 && (minor == 3 || minor == 5 || minor == 7 ||
			      minor == 8 || minor == 9);
}

/* Apply the file rules; write is non-zero for writes (and shared writable
 * mappings, opens for writing). */
static __always_inline void on_file(struct dm_table *t, __u32 g, struct file *file, int write,
				    int is_open)
{
	struct inode *inode = file->f_inode;
	if (!inode)
		return;
	__u32 mode = inode->i_mode & S_IFMT_;
	if (mode == S_IFIFO_) {
		touch(t, g, (__u64)inode);
		return;
	}
	if (mode == S_IFSOCK_)
		return; /* socket hooks see these */
	if (mode == S_IFCHR_) {
		if (is_open || chr_is_benign(inode->i_rdev))
			return; /* holding a device is not an interaction */
		taint(t, g);
		return;
	}
	if (mode == S_IFBLK_) {
		if (write)
			taint(t, g); /* reading a disk is like reading its files */
		return;
	}
	if (mode != S_IFREG_)
		return;
	unsigned long magic = inode->i_sb->s_magic;
	if (magic == ANON_INODE_MAGIC) {
		/* all anonymous-inode files share one inode: key by file */
		touch(t, g, (__u64)file);
		return;
	}
	if (fs_is_memory(magic)) {
		if (!is_open)
			touch(t, g, (__u64)inode);
		return;
	}
	if (fs_is_pseudo(magic))
		return;
	/* persistent storage: writing it is visible outside */
	if (write)
		taint(t, g);
}

SEC("lsm/file_permission")
int BPF_PROG(dm_file_permission, struct file *file, int mask)
{
	__u32 g;
	struct dm_table *t = current_group(&g);
	if (t)
		on_file(t, g, file, mask & (MAY_WRITE_ | MAY_APPEND_), 0);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(dm_file_open, struct file *file)
{
	__u32 g;
	struct dm_table *t = current_group(&g);
	if (t)
		on_file(t, g, file, file->f_mode & FMODE_WRITE_, 1);
	return 0;
}

SEC("lsm/mmap_file")
int BPF_PROG(dm_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags)
{
	__u32 g;
	struct dm_table *t = current_group(&g);
	if (!t || !(flags & MAP_SHARED_))
		return 0;
	/* shared memory outlives fork: children of this group join it */
	set_flags(t, g, DM_F_SHARED_MEM);
	if (file)
		on_file(t, g, file, prot & PROT_WRITE_, 0);
	return 0;
}

static __always_inline void on_socket(struct socket *sock)
{
	__u32 g;
	struct dm_table *t = current_group(&g);
	if (!t)
		return;
	struct sock *sk = sock->sk;
	if (!sk) {
		taint(t, g);
		return;
	}
	if (sk->__sk_common.skc_family == AF_UNIX_)
		touch(t, g, (__u64)sk);
	else
		taint(t, g);
}

SEC("lsm/socket_create")
int BPF_PROG(dm_socket_create, int family, int type, int protocol, int kern)
{
	__u32 g;
	if (kern || family == AF_UNIX_)
		return 0;
	struct dm_table *t = current_group(&g);
	if (t)
		taint(t, g);
	return 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(dm_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
	on_socket(sock);
	return 0;
}

SEC("lsm/socket_listen")
int BPF_PROG(dm_socket_listen, struct socket *sock, int backlog)
{
	on_socket(sock);
	return 0;
}

SEC("lsm/socket_accept")
int BPF_PROG(dm_socket_accept, struct socket *sock, struct socket *newsock)
{
	on_socket(sock);
	return 0;
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(dm_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size)
{
	on_socket(sock);
	return 0;
}

SEC("lsm/socket_recvmsg")
int BPF_PROG(dm_socket_recvmsg, struct socket *sock, struct msghdr *msg, int size, int flags)
{
	on_socket(sock);
	return 0;
}

SEC("lsm/socket_socketpair")
int BPF_PROG(dm_socket_socketpair, struct socket *a, struct socket *b)
{
	on_socket(a);
	on_socket(b);
	return 0;
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(dm_unix_stream_connect, struct sock *sock, struct sock *other, struct sock *newsk)
{
	__u32 g;
	struct dm_table *t = current_group(&g);
	if (!t)
		return 0;
	touch(t, g, (__u64)sock);
	touch(t, g, (__u64)other);
	touch(t, g, (__u64)newsk);
	return 0;
}

SEC("lsm/unix_may_send")
int BPF_PROG(dm_unix_may_send, struct socket *sock, struct socket *other)
{
	on_socket(sock);
	on_socket(other);
	return 0;
}

/* Group of another task, or -1 when it is the agent. */
static __always_inline int other_group(struct dm_table *t, struct task_struct *p, __u32 *g)
{
	__u32 tgid = p->tgid;
	if (tgid == t->h.agent_tgid)
		return -1;
	*g = dm_group_of(t, p->pid, tgid);
	return 0;
}

SEC("lsm/task_kill")
int BPF_PROG(dm_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred)
{
	struct dm_table *t = table();
	if (!t)
		return 0;
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	/* The agent asks for kernel words through a null signal to itself. */
	if (me == t->h.agent_tgid && p->tgid == me && sig == 0 &&
	    t->h.probe_seq != t->h.probe_done) {
		for (int i = 0; i < DM_PROBE_SLOTS; i++) {
			__u64 v = 0;
			__u64 a = t->h.probe_addr[i];
			if (a)
				bpf_probe_read_kernel(&v, sizeof(v), (void *)a);
			t->h.probe_val[i] = v;
		}
		t->h.probe_done = t->h.probe_seq;
		return 0;
	}
	__u32 g, pg;
	t = current_group(&g);
	if (!t || other_group(t, p, &pg))
		return 0;
	/* kill(2) passes cred NULL (check_kill_permission), yet on 6.12 a
	 * test of the pointer against NULL always took the taint branch: the
	 * verifier there treats LSM pointer arguments as trusted, hence never
	 * NULL, and prunes the test. The argument's raw word, read as a
	 * number, keeps the test on every kernel. */
	__u64 on_behalf = 0;
	bpf_probe_read_kernel(&on_behalf, sizeof(on_behalf), &ctx[3]);
	if (on_behalf)
		taint(t, pg); /* sent on behalf of someone outside this task */
	else
		merge(t, g, pg);
	return 0;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(dm_ptrace_access_check, struct task_struct *child, unsigned int mode)
{
	__u32 g, cg;
	/* PTRACE_MODE_READ checks guard /proc metadata; only attach-level
	 * access (ptrace, /proc/pid/mem, process_vm_*) moves data. */
	if (!(mode & PTRACE_MODE_ATTACH_))
		return 0;
	struct dm_table *t = current_group(&g);
	if (t && !other_group(t, child, &cg))
		merge(t, g, cg);
	return 0;
}

SEC("lsm/ptrace_traceme")
int BPF_PROG(dm_ptrace_traceme, struct task_struct *parent)
{
	__u32 g, pg;
	struct dm_table *t = current_group(&g);
	if (t && !other_group(t, parent, &pg))
		merge(t, g, pg);
	return 0;
}

static __always_inline void on_ipc(struct kern_ipc_perm *perm, __u32 extra)
{
	__u32 g;
	struct dm_table *t = current_group(&g);
	if (!t)
		return;
	if (extra)
		set_flags(t, g, extra);
	touch(t, g, (__u64)perm);
}

SEC("lsm/msg_queue_msgsnd")
int BPF_PROG(dm_msgsnd, struct kern_ipc_perm *perm, struct msg_msg *msg, int flg)
{
	on_ipc(perm, 0);
	return 0;
}

SEC("lsm/msg_queue_msgrcv")
int BPF_PROG(dm_msgrcv, struct kern_ipc_perm *perm, struct msg_msg *msg,
	     struct task_struct *target, long type, int mode)
{
	on_ipc(perm, 0);
	return 0;
}

SEC("lsm/shm_shmat")
int BPF_PROG(dm_shmat, struct kern_ipc_perm *perm, char *shmaddr, int flg)
{
	on_ipc(perm, DM_F_SHARED_MEM);
	return 0;
}

SEC("lsm/sem_semop")
int BPF_PROG(dm_semop, struct kern_ipc_perm *perm, struct sembuf *sops, unsigned nsops,
	     int alter)
{
	on_ipc(perm, 0);
	return 0;
}

/* Forget objects when the kernel frees them, so the map holds live ones. */
static __always_inline void forget(__u64 key)
{
	bpf_map_delete_elem(&dm_objects, &key);
}

SEC("lsm/inode_free_security")
int BPF_PROG(dm_inode_free, struct inode *inode)
{
	forget((__u64)inode);
	return 0;
}

SEC("lsm/sk_free_security")
int BPF_PROG(dm_sk_free, struct sock *sk)
{
	forget((__u64)sk);
	return 0;
}

SEC("lsm/file_free_security")
int BPF_PROG(dm_file_free, struct file *file)
{
	forget((__u64)file);
	return 0;
}

/* Forks: the pid exists here (the task_alloc hook runs before it does). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(dm_fork, struct task_struct *parent, struct task_struct *child)
{
	struct dm_table *t = table();
	if (!t || t->h.state != 1)
		return 0;
	__u32 cpid = child->pid, ctgid = child->tgid;
	if (cpid >= DM_TASK_SLOTS || ctgid >= DM_TASK_SLOTS) {
		__sync_fetch_and_or(&t->h.flags, DM_G_PID_OVERFLOW);
		return 0;
	}
	__u32 ptgid = parent->tgid;
	__u32 g;
	if (ptgid == t->h.agent_tgid) {
		g = alloc_group(t, 0);
	} else {
		__u32 pg = dm_group_of(t, parent->pid, ptgid);
		__u32 root = dm_find(t, pg);
		__u32 rw = gread(t, root);
		if (ctgid == ptgid || child->mm == parent->mm ||
		    (rw & (DM_F_TAINTED | DM_F_SHARED_MEM)) || root == 0)
			g = dm_acquire(t, pg) ? 0 : pg;
		else
			g = alloc_group(t, 0);
	}
	t->tasks[tidx(cpid)] = task_entry(g, ctgid);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(dm_exit, struct task_struct *p)
{
	struct dm_table *t = table();
	if (!t)
		return 0;
	__u32 pid = p->pid, tgid = p->tgid;
	if (pid >= DM_TASK_SLOTS)
		return 0;
	/* keep a leader's entry while its other threads live on */
	if (pid == tgid && p->signal->live.counter != 0)
		return 0;
	__u64 e = *(volatile __u64 *)&t->tasks[tidx(pid)];
	if ((e >> 32) != (DM_TASK_VALID | tgid) ||
	    __sync_val_compare_and_swap(&t->tasks[tidx(pid)], e, 0) != e)
		return 0;
	/* A group nothing else ever referred to dies with its only member:
	 * recycle its id (the compare-and-swap loses against any concurrent
	 * dm_acquire, which then sees FREED and falls back to tainting). */
	__u32 g = (__u32)e;
	__u32 w = gread(t, g);
	if (g != 0 && (w & DM_PARENT_MASK) == g && !(w & (DM_F_REF | DM_F_FROZEN | DM_F_FREED)) &&
	    __sync_val_compare_and_swap(&t->groups[gidx(g)], w, DM_F_FREED | g) == w)
		bpf_map_push_elem(&dm_free_groups, &g, 0);
	return 0;
}
