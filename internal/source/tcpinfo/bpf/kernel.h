/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The few kernel types iter.c reads, declared by hand instead of a generated vmlinux.h
 * (135,000 lines). preserve_access_index makes every field access a CO-RE relocation: the
 * loader (cilium/ebpf) finds each field by name in the running kernel's BTF
 * (/sys/kernel/btf/vmlinux), so the offsets and the order below do not matter, only the names
 * and the types. Anonymous unions and structs of the kernel's definitions are looked through.
 */
#ifndef NETLEDGER_KERNEL_H
#define NETLEDGER_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __u32 uid_t;


struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct sock_common;

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	uid_t uid;
} __attribute__((preserve_access_index));

struct in6_addr {
	__u8 s6_addr[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct kernfs_node {
	u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct sock_cgroup_data {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct sock_cgroup_data sk_cgrp_data;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));

struct minmax_sample {
	u32 t;
	u32 v;
};

struct minmax {
	struct minmax_sample s[3];
};

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	u32 mss_cache;
	u32 srtt_us;
	u32 mdev_us;
	struct minmax rtt_min;
	u32 segs_out;
	u32 segs_in;
	u32 total_retrans;
	u32 rate_delivered;
	u32 rate_interval_us;
	u64 bytes_acked;
	u64 bytes_received;
	u64 bytes_sent;
	u64 bytes_retrans;
	u8 chrono_type : 2; /* a bit field before Linux 6.8, a byte since: read with BPF_CORE_READ_BITFIELD */
	u32 chrono_start;
	u32 chrono_stat[3];
} __attribute__((preserve_access_index));

#endif
