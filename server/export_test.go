package server

// SetProvisionFault makes POST /api/provision call fault after each of its steps: an error
// (or a panic) from it aborts the provisioning, which must then leave nothing behind. Set it
// before the server's first request.
func (s *Server) SetProvisionFault(fault func(step string) error) { s.provisionFault = fault }

// Every body the tests send is decoded by both of unmarshalStrict's paths, which must agree.
func init() { crossCheckStrict = true }
