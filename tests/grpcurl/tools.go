//go:build tools

// Package tools pins grpcurl, a gRPC client the project did not write, which the hub's tests
// use to check reflection and the health service (see build.sh).
package tools

import _ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
