package server

// resourceRoutes are the organization resources: connections (and their shares) and datasets.
func (s *Server) resourceRoutes() []route { return nil }
