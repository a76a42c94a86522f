// SPDX-License-Identifier: GPL-2.0-only
//
// netledger's TCP socket iterator (bpf_iter/tcp, Linux 5.9+): the kernel runs dump_tcp once per
// TCP socket of the network namespace the iterator was created in, with the socket locked, and
// it writes one fixed-size struct tcp_rec per wanted socket into the iterator's seq_file, which
// the Go side reads in large reads. It copies what tcp_get_info (net/ipv4/tcp.c) would compute
// for the fields netledger uses, and nothing else: the netlink sock_diag dump builds a whole
// tcp_info and its netlink attributes per socket, which is most of that dump's cost.

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL"; // bpf_skc_to_tcp_sock and bpf_seq_write are GPL-only

#define AF_INET 2
#define AF_INET6 10
#define TCP_LISTEN 10

// Set by the loader before the program is loaded (read-only data: the verifier prunes what
// they turn off).
volatile const __u32 wanted_states = 0;  // a bitmask of TCP states (1 << state)
volatile const __u32 usec_per_jiffy = 0; // USEC_PER_SEC / HZ, as tcp_get_info's busy time
volatile const __u8 filter_ports = 0;    // only local ports set in port_bits
volatile const __u8 want_cgroup = 0;     // fill cgroup_id (the cgroup filter)
volatile const __u64 port_bits[1024] = {};

// One socket. Its layout is the Go decoder's (bpfiter.go, tcpRec*): 136 bytes, native byte
// order, ports in host order, an IPv4 address in the first 4 bytes of its field.
struct tcp_rec {
	__u64 cookie;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u64 bytes_sent;
	__u64 bytes_retrans;
	__u64 delivery_rate;
	__u64 busy_us;
	__u64 cgroup_id;
	__u8 local[16];
	__u8 remote[16];
	__u32 segs_out;
	__u32 segs_in;
	__u32 total_retrans;
	__u32 mss;
	__u32 rtt;
	__u32 rttvar;
	__u32 min_rtt;
	__u16 local_port;
	__u16 remote_port;
	__u8 family;
	__u8 state;
	__u8 pad[6];
};

// Make bpf2go emit the Go type (the decoder's layout test compares with it).
const struct tcp_rec *unused_tcp_rec __attribute__((unused));

SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	__u8 state = skc->skc_state;
	if (state >= 32 || !(wanted_states & (1u << state)))
		return 0;
	__u16 lport = skc->skc_num;
	if (filter_ports && !(port_bits[(lport >> 6) & 1023] & (1ull << (lport & 63))))
		return 0;
	// NULL for request and TIME_WAIT minisockets: they carry no counters.
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;

	struct tcp_rec r = {};
	r.family = skc->skc_family;
	r.state = state;
	r.local_port = lport;
	r.remote_port = __builtin_bswap16(skc->skc_dport);
	if (r.family == AF_INET) {
		__be32 l = skc->skc_rcv_saddr, d = skc->skc_daddr;
		__builtin_memcpy(r.local, &l, 4);
		__builtin_memcpy(r.remote, &d, 4);
	} else if (r.family == AF_INET6) {
		BPF_CORE_READ_INTO(&r.local, skc, skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&r.remote, skc, skc_v6_daddr);
	} else {
		return 0;
	}
	// The cookie sock_diag reports (sock_gen_cookie: made on first use), so that the
	// tracker knows a socket across dumps and its destroy notification.
	r.cookie = bpf_get_socket_cookie(tp);
	if (want_cgroup)
		r.cgroup_id = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup, kn, id);
	if (state == TCP_LISTEN)
		goto out;

	r.bytes_acked = tp->bytes_acked;
	r.bytes_received = tp->bytes_received;
	r.bytes_sent = tp->bytes_sent;
	r.bytes_retrans = tp->bytes_retrans;
	r.segs_out = tp->segs_out;
	r.segs_in = tp->segs_in;
	r.total_retrans = tp->total_retrans;
	r.mss = tp->mss_cache;
	r.rtt = tp->srtt_us >> 3;
	r.rttvar = tp->mdev_us >> 2;
	r.min_rtt = tp->rtt_min.s[0].v;

	__u32 rate = tp->rate_delivered, intv = tp->rate_interval_us;
	if (rate && intv)
		r.delivery_rate = (__u64)rate * r.mss * 1000000 / intv;

	// tcp_get_info_chrono_stats: the time spent busy, rwnd- and sndbuf-limited, the current
	// chrono counting up to now, in jiffies, each scaled to µs.
	__u32 type = BPF_CORE_READ_BITFIELD(tp, chrono_type);
	__u32 now = (__u32)bpf_jiffies64();
	__u64 busy = 0;
	for (__u32 i = 0; i < 3; i++) {
		__u32 st = tp->chrono_stat[i];
		if (i + 1 == type)
			st += now - tp->chrono_start;
		busy += (__u64)st * usec_per_jiffy;
	}
	r.busy_us = busy;
out:
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
