package delivery

// Control runs g's connection-time check on the address a dialer would connect to, without
// connecting.
func (g Guard) Control(network, address string) error { return g.control(network, address, nil) }
