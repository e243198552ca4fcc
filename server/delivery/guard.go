package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Guard keeps deliveries away from the server's own network: endpoints that are, or resolve
// to, loopback, private, link-local, CGNAT, unspecified, multicast, documentation or other
// reserved addresses are
// refused, unless the operator allows them (AllowPrivate, for a receiver on the same host or
// network, and for tests). It checks twice: when a webhook is created or changed (the host
// must resolve, to public addresses only), and at every connection, on the address actually
// dialed, so a name that resolved to a public address then and to a private one now (DNS
// rebinding) is still refused.
type Guard struct {
	AllowPrivate bool
	Resolver     *net.Resolver // nil: net.DefaultResolver
}

// resolveTimeout bounds the name resolution of CheckEndpoint.
const resolveTimeout = 5 * time.Second

// blockedRanges are the networks deliveries may not reach, with what they are.
var blockedRanges = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (\"this network\") address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved (IETF protocol assignment) address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation (TEST-NET-1) address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved (benchmarking) address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation (TEST-NET-2) address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation (TEST-NET-3) address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a private (unique local) address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a private (site-local) address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// Blocked says what kind of non-public address ip is ("a loopback address"), or "" when
// deliveries may reach it. IPv4 addresses inside IPv6 (::ffff:a.b.c.d, and the NAT64 prefix
// 64:ff9b::/96) are judged as the IPv4 address they carry; a zone is ignored.
func Blocked(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap() // a zone (fe80::1%eth0) would make Contains fail
	if !ip.IsValid() {
		return "not a valid address"
	}
	if ip.Is6() && netip.MustParsePrefix("64:ff9b::/96").Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return r.what
		}
	}
	return ""
}

// errBlocked is a connection refused by the guard.
var errBlocked = errors.New("refused")

// CheckEndpoint vets a webhook endpoint, an absolute URL: "" allows it, anything else is the
// problem, for the API caller. https is required unless private targets are allowed (a
// receiver on the operator's own network may not have a certificate); the host must resolve,
// and to public addresses only unless private targets are allowed.
func (g Guard) CheckEndpoint(ctx context.Context, u *url.URL) string {
	if u.Scheme != "https" && !g.AllowPrivate {
		return "must be an https URL (plain http is only accepted when the operator allows private webhook targets)"
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if what := Blocked(ip); what != "" && !g.AllowPrivate {
			return fmt.Sprintf("is %s (%s): webhooks may only reach public addresses", what, ip)
		}
		return ""
	}
	host = strings.TrimSuffix(host, ".")
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Sprintf("has a host, %q, that does not resolve to any address (DNS lookup failed); check the name, or create its DNS record first", u.Hostname())
	}
	if g.AllowPrivate {
		return ""
	}
	for _, ip := range addrs {
		if what := Blocked(ip); what != "" {
			return fmt.Sprintf("has a host, %q, that resolves to %s (%s): webhooks may only reach public addresses", u.Hostname(), what, ip.Unmap())
		}
	}
	return ""
}

// control is the dialer's check of every address it connects to, after name resolution.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address %q", errBlocked, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address %q", errBlocked, address)
	}
	if what := Blocked(ip); what != "" {
		return fmt.Errorf("%w: %s is %s and webhooks may only reach public addresses", errBlocked, ip.Unmap(), what)
	}
	return nil
}
