package bgp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// openTimeout bounds the wait for the neighbor's OPEN (RFC 4271's "large" hold timer).
const openTimeout = 4 * time.Minute

// ourFamilies are the address families we negotiate.
var ourFamilies = []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC}

// sessionError is a session ending: the NOTIFICATION we send (if any) and why.
type sessionError struct {
	code, subcode uint8
	data          []byte
	msg           string
	send          bool // send a NOTIFICATION
}

func (e *sessionError) Error() string {
	if e.send {
		return fmt.Sprintf("%s (notification %d/%d sent)", e.msg, e.code, e.subcode)
	}
	return e.msg
}

func notification(code, subcode uint8, msg string) *sessionError {
	return &sessionError{code: code, subcode: subcode, msg: msg, send: true}
}

// session is one TCP connection to a neighbor going through OpenSent, OpenConfirm and
// Established. Only its own goroutine reads; writes are serialised by wmu.
type session struct {
	p        *peer
	nc       net.Conn
	r        *bufio.Reader
	outgoing bool

	state    State // guarded by p.mu
	reached  bool  // reached Established
	remoteID netip.Addr
	as2      bool
	hold     time.Duration
	families []bgp.Family
	opts     []*bgp.MarshallingOption

	wmu       sync.Mutex
	closeOnce sync.Once
	failMu    sync.Mutex
	failed    *sessionError // set by another goroutine (collision, shutdown)

	buf [bgp.BGP_MAX_MESSAGE_LENGTH]byte
	up  update
}

func newSession(p *peer, nc net.Conn, outgoing bool) *session {
	return &session{p: p, nc: nc, r: bufio.NewReaderSize(nc, 64<<10), outgoing: outgoing}
}

func (s *session) close() { s.closeOnce.Do(func() { s.nc.Close() }) }

// fail ends the session from another goroutine: it sends the NOTIFICATION and closes the
// connection, which makes the reader return.
func (s *session) fail(e *sessionError) {
	s.failMu.Lock()
	first := s.failed == nil
	if first {
		s.failed = e
	}
	s.failMu.Unlock()
	if first {
		s.notify(e)
		s.close()
	}
}

func (s *session) failure() *sessionError {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failed
}

func (s *session) write(msg *bgp.BGPMessage) error {
	b, err := msg.Serialize()
	if err != nil {
		return fmt.Errorf("cannot encode bgp message: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.nc.Write(b); err != nil {
		return fmt.Errorf("cannot send bgp message: %w", err)
	}
	return nil
}

func (s *session) notify(e *sessionError) {
	if !e.send {
		return
	}
	m := s.p.c.metrics
	m.notifSent.WithLabelValues(s.p.n.Name, strconv.Itoa(int(e.code)), strconv.Itoa(int(e.subcode))).Inc()
	_ = s.write(bgp.NewBGPNotificationMessage(e.code, e.subcode, e.data))
}

// run drives the connection until it ends and returns why.
func (s *session) run() error {
	err := s.handshakeAndServe()
	if f := s.failure(); f != nil {
		return f
	}
	var se *sessionError
	if errors.As(err, &se) {
		s.notify(se)
	}
	if err != nil {
		reason := "closed"
		switch {
		case se != nil && se.send:
			reason = "protocol"
		case se != nil:
			reason = "notification_received"
		case errors.Is(err, os.ErrDeadlineExceeded):
			reason = "timeout"
		}
		s.p.c.metrics.errors.WithLabelValues(s.p.n.Name, reason).Inc()
	}
	return err
}

func (s *session) handshakeAndServe() error {
	p := s.p
	if err := s.write(s.openMessage()); err != nil {
		return err
	}
	msg, err := s.read(openTimeout)
	if err != nil {
		return err
	}
	open, ok := msg.Body.(*bgp.BGPOpen)
	if !ok {
		return notification(bgp.BGP_ERROR_FSM_ERROR, bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENSENT_STATE, "expected an OPEN")
	}
	if err := s.negotiate(open); err != nil {
		return err
	}
	if !p.openReceived(s) {
		return notification(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION, "connection collision")
	}
	if err := s.write(bgp.NewBGPKeepAliveMessage()); err != nil {
		return err
	}
	msg, err = s.read(s.hold)
	if err != nil {
		return err
	}
	if _, ok := msg.Body.(*bgp.BGPKeepAlive); !ok {
		return notification(bgp.BGP_ERROR_FSM_ERROR, bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENCONFIRM_STATE, "expected a KEEPALIVE")
	}
	if !p.established(s) {
		return notification(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION, "connection collision")
	}

	done := make(chan struct{})
	defer close(done)
	if s.hold > 0 {
		go s.keepalives(done)
	}
	for {
		msg, err := s.read(s.hold)
		if err != nil {
			return err
		}
		switch b := msg.Body.(type) {
		case *bgp.BGPKeepAlive, *bgp.BGPRouteRefresh:
			// We advertise nothing: a route refresh request has nothing to refresh.
		case *bgp.BGPUpdate:
			s.apply(b, nil)
		default:
			return notification(bgp.BGP_ERROR_FSM_ERROR, bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_ESTABLISHED_STATE, "unexpected message")
		}
	}
}

func (s *session) keepalives(done <-chan struct{}) {
	t := time.NewTicker(s.hold / 3)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if err := s.write(bgp.NewBGPKeepAliveMessage()); err != nil {
				return
			}
		}
	}
}

func (s *session) openMessage() *bgp.BGPMessage {
	c := s.p.c
	as2 := uint16(bgp.AS_TRANS)
	if c.cfg.LocalASN <= 0xffff {
		as2 = uint16(c.cfg.LocalASN)
	}
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC),
		bgp.NewCapRouteRefresh(),
		bgp.NewCapFourOctetASNumber(c.cfg.LocalASN),
		bgp.NewCapAddPath([]*bgp.CapAddPathTuple{
			bgp.NewCapAddPathTuple(bgp.RF_IPv4_UC, bgp.BGP_ADD_PATH_RECEIVE),
			bgp.NewCapAddPathTuple(bgp.RF_IPv6_UC, bgp.BGP_ADD_PATH_RECEIVE),
		}),
		// Graceful restart with no families: we keep no forwarding state, but the neighbor
		// then marks the end of its initial table with End-of-RIB (RFC 4724 2).
		bgp.NewCapGracefulRestart(false, false, 0, nil),
	}
	msg, _ := bgp.NewBGPOpenMessage(as2, uint16(s.p.hold/time.Second), c.id,
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	return msg
}

// negotiate checks the neighbor's OPEN (RFC 4271 6.2) and settles the session's parameters.
func (s *session) negotiate(o *bgp.BGPOpen) error {
	p := s.p
	openErr := func(sub uint8, data []byte, msg string) error {
		return &sessionError{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, subcode: sub, data: data, msg: msg, send: true}
	}
	if o.Version != 4 {
		return openErr(bgp.BGP_ERROR_SUB_UNSUPPORTED_VERSION_NUMBER, []byte{0, 4}, fmt.Sprintf("unsupported bgp version %d", o.Version))
	}
	peerAS, as4 := uint32(o.MyAS), false
	families := make([]bgp.Family, 0, 2)
	sawMP := false
	addPath := make(map[bgp.Family]bgp.BGPAddPathMode)
	for _, op := range o.OptParams {
		oc, ok := op.(*bgp.OptionParameterCapability)
		if !ok {
			continue
		}
		for _, c := range oc.Capability {
			switch c := c.(type) {
			case *bgp.CapFourOctetASNumber:
				peerAS, as4 = c.CapValue, true
			case *bgp.CapMultiProtocol:
				sawMP = true
				for _, f := range ourFamilies {
					if c.CapValue == f && !containsFamily(families, f) {
						families = append(families, f)
					}
				}
			case *bgp.CapAddPath:
				for _, t := range c.Tuples {
					if t != nil && t.Mode&bgp.BGP_ADD_PATH_SEND != 0 {
						addPath[t.Family] = bgp.BGP_ADD_PATH_RECEIVE
					}
				}
			}
		}
	}
	if peerAS != p.n.PeerASN {
		data := binary.BigEndian.AppendUint16(nil, o.MyAS)
		return openErr(bgp.BGP_ERROR_SUB_BAD_PEER_AS, data, fmt.Sprintf("neighbor announces AS%d, configured AS%d", peerAS, p.n.PeerASN))
	}
	if o.HoldTime == 1 || o.HoldTime == 2 {
		return openErr(bgp.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME, nil, fmt.Sprintf("unacceptable hold time %ds", o.HoldTime))
	}
	if !o.ID.Is4() || o.ID.IsUnspecified() || (o.ID == p.c.id && peerAS == p.c.cfg.LocalASN) {
		return openErr(bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER, nil, fmt.Sprintf("bad bgp identifier %v", o.ID))
	}
	if !sawMP {
		families = append(families, bgp.RF_IPv4_UC)
	}
	for f := range addPath {
		if !containsFamily(families, f) {
			delete(addPath, f)
		}
	}
	s.remoteID = o.ID
	s.as2 = !as4
	s.families = families
	s.hold = min(p.hold, time.Duration(o.HoldTime)*time.Second)
	s.opts = []*bgp.MarshallingOption{{AddPath: addPath, Use2ByteAS: !as4}}
	return nil
}

func containsFamily(fs []bgp.Family, f bgp.Family) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}

// read returns the next message, waiting at most hold (0: forever). A NOTIFICATION from the
// neighbor ends the session; malformed messages give the NOTIFICATION to send. UPDATEs with
// errors to handle as withdraw (RFC 7606) are applied here and skipped.
func (s *session) read(hold time.Duration) (*bgp.BGPMessage, error) {
	for {
		if hold > 0 {
			s.nc.SetReadDeadline(time.Now().Add(hold))
		} else {
			s.nc.SetReadDeadline(time.Time{})
		}
		hdr := s.buf[:bgp.BGP_HEADER_LENGTH]
		if _, err := io.ReadFull(s.r, hdr); err != nil {
			return nil, s.readError(err)
		}
		var h bgp.BGPHeader
		if err := h.DecodeFromBytes(hdr); err != nil {
			return nil, fromMessageError(err)
		}
		if h.Len > bgp.BGP_MAX_MESSAGE_LENGTH {
			return nil, &sessionError{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH,
				data: binary.BigEndian.AppendUint16(nil, h.Len), msg: fmt.Sprintf("message length %d", h.Len), send: true}
		}
		body := s.buf[bgp.BGP_HEADER_LENGTH:h.Len]
		if _, err := io.ReadFull(s.r, body); err != nil {
			return nil, s.readError(err)
		}
		msg, err := bgp.ParseBGPBody(&h, body, s.opts...)
		if err != nil {
			var me *bgp.MessageError
			if msg != nil && errors.As(err, &me) && me.ErrorHandling <= bgp.ERROR_HANDLING_TREAT_AS_WITHDRAW {
				if u, ok := msg.Body.(*bgp.BGPUpdate); ok && s.state == StateEstablished {
					s.apply(u, me)
					continue
				}
			}
			s.p.c.metrics.errors.WithLabelValues(s.p.n.Name, "malformed").Inc()
			return nil, fromMessageError(err)
		}
		if n, ok := msg.Body.(*bgp.BGPNotification); ok {
			s.p.c.metrics.notifReceived.WithLabelValues(s.p.n.Name, strconv.Itoa(int(n.ErrorCode)), strconv.Itoa(int(n.ErrorSubcode))).Inc()
			return nil, &sessionError{code: n.ErrorCode, subcode: n.ErrorSubcode,
				msg: fmt.Sprintf("notification %d/%d received: %q", n.ErrorCode, n.ErrorSubcode, notificationText(n))}
		}
		if _, ok := msg.Body.(*bgp.BGPUpdate); ok && s.state != StateEstablished {
			sub := uint8(bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENSENT_STATE) // RFC 6608
			if s.state == StateOpenConfirm {
				sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENCONFIRM_STATE
			}
			return nil, notification(bgp.BGP_ERROR_FSM_ERROR, sub, "update before established")
		}
		return msg, nil
	}
}

func notificationText(n *bgp.BGPNotification) string {
	if n.ErrorCode == bgp.BGP_ERROR_CEASE && len(n.Data) > 0 && int(n.Data[0]) < len(n.Data) {
		return string(n.Data[1 : 1+n.Data[0]]) // RFC 8203 shutdown communication
	}
	return ""
}

func (s *session) readError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &sessionError{code: bgp.BGP_ERROR_HOLD_TIMER_EXPIRED, msg: "hold timer expired", send: true}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("connection closed by the neighbor: %w", err)
	}
	return fmt.Errorf("cannot read from the neighbor: %w", err)
}

func fromMessageError(err error) error {
	var me *bgp.MessageError
	if errors.As(err, &me) {
		code := me.TypeCode
		if code == 0 {
			code = bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR
		}
		return &sessionError{code: code, subcode: me.SubTypeCode, data: me.Data, msg: "malformed message: " + me.Message, send: true}
	}
	return &sessionError{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, msg: "malformed message: " + err.Error(), send: true}
}

// apply converts an UPDATE once and writes it to the RIB. me is a treat-as-withdraw decoding
// error (nil if none).
func (s *session) apply(u *bgp.BGPUpdate, me *bgp.MessageError) {
	p := s.p
	m := p.c.metrics
	name := p.n.Name
	m.updates.WithLabelValues(name).Inc()
	if me != nil {
		m.errors.WithLabelValues(name, "treat_as_withdraw").Inc()
	}
	err := convert(u, s.as2, me != nil, &s.up)
	if err != nil {
		m.errors.WithLabelValues(name, "missing_attribute").Inc()
	}
	up := &s.up
	if up.Ignored > 0 {
		m.errors.WithLabelValues(name, "unsupported_family").Add(float64(up.Ignored))
	}
	var a4, a6, w4, w6 int
	p.ribMu.Lock()
	for _, w := range up.Withdraw {
		p.n.RIB.Withdraw(w.Prefix, w.PathID)
		if p.stale != nil {
			delete(p.stale, w)
		}
		if w.Prefix.Addr().Is4() {
			w4++
		} else {
			w6++
		}
	}
	for _, a := range up.Announce {
		p.n.RIB.Announce(a.Prefix, a.PathID, up.Attrs[a.Attrs])
		if p.stale != nil {
			delete(p.stale, a.route)
		}
		if a.Prefix.Addr().Is4() {
			a4++
		} else {
			a6++
		}
	}
	if len(up.Announce) > 0 {
		p.hasRoutes = true
	}
	if up.EndOfRIB != 0 {
		p.endOfRIBLocked(up.EndOfRIB)
	}
	p.ribMu.Unlock()
	if up.EndOfRIB != 0 {
		m.endOfRIB.WithLabelValues(name, afiLabel(up.EndOfRIB)).Inc()
		p.log.Info("bgp end-of-rib received", "family", up.EndOfRIB.String())
	}
	if a4 > 0 {
		m.announced.WithLabelValues(name, "ipv4").Add(float64(a4))
	}
	if a6 > 0 {
		m.announced.WithLabelValues(name, "ipv6").Add(float64(a6))
	}
	if w4 > 0 {
		m.withdrawn.WithLabelValues(name, "ipv4").Add(float64(w4))
	}
	if w6 > 0 {
		m.withdrawn.WithLabelValues(name, "ipv6").Add(float64(w6))
	}
}

func afiLabel(f bgp.Family) string {
	switch f {
	case bgp.RF_IPv4_UC:
		return "ipv4"
	case bgp.RF_IPv6_UC:
		return "ipv6"
	}
	return f.String()
}
