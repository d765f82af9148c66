/* depmig taint table layout, shared by the BPF program and (mirrored in
 * crates/guest-abi/src/table.rs, whose tests compile this header against
 * it) the agent and the walker. The table is one element of a
 * BPF_F_MMAPABLE array map, so its pages can be mapped by the agent and
 * their guest frame numbers published for readers outside the guest.
 * All fields are little endian. See guest-lsm/README.md for the format. */
#ifndef DEPMIG_TABLE_H
#define DEPMIG_TABLE_H

#define DM_PAGE_SIZE 4096
#define DM_TASK_SLOTS 32768        /* one 8-byte entry per pid */
#define DM_GROUP_SLOTS 262144      /* one 4-byte word per group */
#define DM_HEADER_WORDS 512        /* page 0, u64 words */
#define DM_PROFILE_WORDS 512       /* page 1, u64 words */

/* Group word: low 24 bits parent id, high 8 bits flags. */
#define DM_PARENT_MASK 0x00ffffffu
#define DM_FLAG_SHIFT 24
#define DM_F_TAINTED (1u << 24)
#define DM_F_SHARED_MEM (1u << 25)
#define DM_F_FROZEN (1u << 26)
#define DM_F_THAW_REQ (1u << 27)
#define DM_F_REF (1u << 28)      /* something besides its founder refers to it */
#define DM_F_FREED (1u << 29)    /* on the free list, to be reused */
#define DM_FLAGS_MASK 0xff000000u

/* Task entry: low 32 bits group id, high 32 bits DM_TASK_VALID | tgid. */
#define DM_TASK_VALID 0x80000000u

/* Global flags (header word DM_H_FLAGS, low 32 bits). */
#define DM_G_GROUPS_EXHAUSTED 1u
#define DM_G_OBJECTS_FULL 2u
#define DM_G_PID_OVERFLOW 4u
#define DM_G_FIND_BOUND 8u

/* Header byte offsets (page 0). */
#define DM_H_MAGIC 0x000        /* "DMTAINT1" */
#define DM_H_VERSION 0x008      /* u32 */
#define DM_H_PAGE_SIZE 0x00c    /* u32 */
#define DM_H_NR_PAGES 0x010     /* u32 */
#define DM_H_PROFILE_PAGE 0x014 /* u32 */
#define DM_H_TASK_PAGE 0x018    /* u32 */
#define DM_H_TASK_SLOTS 0x01c   /* u32 */
#define DM_H_GROUP_PAGE 0x020   /* u32 */
#define DM_H_GROUP_SLOTS 0x024  /* u32 */
#define DM_H_AGENT_TGID 0x028   /* u32 */
#define DM_H_STATE 0x02c        /* u32: 0 init, 1 tracking */
#define DM_H_NEXT_GROUP 0x030   /* u32 */
#define DM_H_FLAGS 0x034        /* u32 */
#define DM_H_MAX_FIND 0x038     /* u32 */
#define DM_H_FRAMES 0x040       /* u64[nr_pages] */
#define DM_H_PROBE_ADDR 0xf00   /* u64[8]: kernel addresses the agent asks to read */
#define DM_H_PROBE_VAL 0xf40    /* u64[8]: values read */
#define DM_H_PROBE_SEQ 0xf80    /* u32: bumped by the agent to request a probe */
#define DM_H_PROBE_DONE 0xf84   /* u32: set to PROBE_SEQ when done */
#define DM_PROBE_SLOTS 8

#define DM_MAX_FIND 32

struct dm_table {
	union {
		__u64 words[DM_HEADER_WORDS];
		struct {
			__u64 magic;
			__u32 version, page_size, nr_pages, profile_page;
			__u32 task_page, task_slots, group_page, group_slots;
			__u32 agent_tgid, state, next_group, flags;
			__u32 max_find, pad0;
			__u64 frames[(0xf00 - 0x40) / 8];
			__u64 probe_addr[DM_PROBE_SLOTS];
			__u64 probe_val[DM_PROBE_SLOTS];
			__u32 probe_seq, probe_done;
		} h;
	};
	__u64 profile[DM_PROFILE_WORDS];
	__u64 tasks[DM_TASK_SLOTS];
	__u32 groups[DM_GROUP_SLOTS];
};

#endif
