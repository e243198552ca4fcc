package server

// webhookRoutes are the webhook endpoints (being written).
func (s *Server) webhookRoutes() []route { return nil }
