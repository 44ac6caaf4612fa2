package main

import (
	"slices"
	"strings"
	"testing"
)

func TestFeatureGatesReachTheAPIServerOnlyWhenGiven(t *testing.T) {
	c := &cluster{Name: "gates", Dir: t.TempDir()}
	if args := c.apiServerArgs(ports{}); slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--feature-gates=") }) {
		t.Fatalf("no gates asked for, yet %v", args)
	}
	c.FeatureGates = "WatchList=false"
	if args := c.apiServerArgs(ports{}); !slices.Contains(args, "--feature-gates=WatchList=false") {
		t.Fatalf("--feature-gates=WatchList=false missing from %v", args)
	}
}

func TestFeatureGatesForm(t *testing.T) {
	for gates, valid := range map[string]bool{
		"WatchList=false": true,
		"WatchList=false,InPlacePodVerticalScaling=true": true,
		"WatchList":        false,
		"WatchList=off":    false,
		"WatchList=false,": false,
		"--foo=true":       false,
	} {
		if got := validFeatureGates.MatchString(gates); got != valid {
			t.Errorf("%q: valid %v, want %v", gates, got, valid)
		}
	}
}
