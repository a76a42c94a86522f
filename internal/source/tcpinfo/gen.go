package tcpinfo

// The BPF socket iterator (bpf/iter.c) is compiled into tcpiter_bpfel.o and tcpiter_bpfeb.o,
// committed with their Go bindings so that neither `go build` nor CI needs clang. Regenerate
// after editing bpf/ (clang and libbpf's headers, libbpf-dev, needed):
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -type tcp_rec tcpIter bpf/iter.c
