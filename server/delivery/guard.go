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

	"code.dny.dev/ssrf"
)

// Guard keeps deliveries away from the server's own network: endpoints that are, or resolve
// to, an address outside the public internet are refused, unless the operator allows them
// (AllowPrivate, for a receiver on the same host or network, and for tests). Which addresses
// are public is the deny-list of code.dny.dev/ssrf, generated from IANA's IPv4 and IPv6
// special-purpose registries: loopback, private, link-local, CGNAT, multicast,
// documentation, benchmarking, reserved, and for IPv6 everything outside global unicast
// (2000::/3: IPv4-compatible ::/96, NAT64 local-use 64:ff9b:1::/48, discard-only 100::/64,
// ...) plus the special ranges inside it (6to4 2002::/16, Teredo 2001::/32, ...).
// It checks twice: when a webhook is created or changed (the host must resolve, to public
// addresses only), and at every connection, on the address actually dialed, so a name that
// resolved to a public address then and to a private one now (DNS rebinding) is still refused.
type Guard struct {
	AllowPrivate bool
	Resolver     *net.Resolver // nil: net.DefaultResolver
}

// resolveTimeout bounds the name resolution of CheckEndpoint.
const resolveTimeout = 5 * time.Second

// guardian holds the deny-list. Any port is allowed (a receiver may listen on 8443); only
// TCP, the library's default, may be dialed. It is immutable, so safe to share.
var guardian = ssrf.New(ssrf.WithAnyPort())

// Blocked says what kind of non-public address ip is ("a loopback address"), or "" when
// deliveries may reach it. A zone is ignored; an IPv4-mapped address (::ffff:a.b.c.d) is the
// IPv4 address it maps, as the kernel connects to it; an address in the NAT64 well-known
// prefix 64:ff9b::/96 is judged as the IPv4 address it carries (a DNS64 resolver on an
// IPv6-only host gives one for every IPv4-only receiver).
func Blocked(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap() // a zone (fe80::1%eth0) would make every prefix miss it
	if !ip.IsValid() {
		return "not a valid address"
	}
	judged := ip
	if ssrf.IPv6NAT64Prefix.Contains(ip) {
		judged = netip.AddrFrom4([4]byte(ip.AsSlice()[12:]))
	}
	if guardian.SafeAddr(judged) == nil {
		return ""
	}
	return kind(judged)
}

// kind names a refused address for the person who configured the webhook.
func kind(ip netip.Addr) string {
	switch {
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.Is6() && !ssrf.IPv6GlobalUnicast.Contains(ip):
		return "an IPv6 address outside the global unicast range 2000::/3"
	}
	denied := ssrf.IPv4DeniedPrefixes
	if ip.Is6() {
		denied = ssrf.IPv6DeniedPrefixes
	}
	for _, p := range denied {
		if p.Contains(ip) {
			return fmt.Sprintf("a special-purpose address in %s", p)
		}
	}
	return "a special-purpose address"
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
	// The library checks the network first (TCP only); its verdict on the address is
	// Blocked's below, which also judges what a NAT64 address carries.
	if err := guardian.Safe(network, address, nil); errors.Is(err, ssrf.ErrProhibitedNetwork) {
		return fmt.Errorf("%w: %v", errBlocked, err)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address %q", errBlocked, address)
	}
	if what := Blocked(ap.Addr()); what != "" {
		return fmt.Errorf("%w: %s is %s and webhooks may only reach public addresses", errBlocked, ap.Addr().WithZone("").Unmap(), what)
	}
	return nil
}
