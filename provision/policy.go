package provision

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// Chooser picks an account's home instance by the topology's provisioning
// policy. It is safe for use by one goroutine at a time.
type Chooser struct {
	Policy  spec.Policy
	Names   []string          // the instances, sorted
	Weights map[string]int    // weighted_random: instance → weight (missing: 1)
	Domains map[string]string // domain: domain → home instance
	Rand    *rand.Rand
}

// NewChooser reads the policy from t (least_used when t states none).
func NewChooser(t *spec.Topology) *Chooser {
	c := &Chooser{Policy: spec.PolicyLeastUsed, Weights: map[string]int{}, Domains: map[string]string{},
		Rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	for _, in := range t.Instances {
		c.Names = append(c.Names, in.Name)
	}
	sort.Strings(c.Names)
	if p := t.Provisioning; p != nil {
		if p.Policy != "" {
			c.Policy = p.Policy
		}
		for k, v := range p.Weights {
			c.Weights[k] = v
		}
		for d, in := range p.Domains {
			c.Domains[strings.ToLower(d)] = in.Name
		}
	}
	return c
}

// NeedsCounts reports whether Choose needs every instance's account count.
func (c *Chooser) NeedsCounts() bool { return c.Policy == spec.PolicyLeastUsed }

// Choose returns the home of a new account of domain. counts (instance →
// accounts) is read by least_used only.
func (c *Chooser) Choose(domain string, counts map[string]int) (string, error) {
	if len(c.Names) == 0 {
		return "", fmt.Errorf("the topology has no mail_instance")
	}
	switch c.Policy {
	case spec.PolicyRandom:
		return c.Names[c.Rand.IntN(len(c.Names))], nil
	case spec.PolicyWeightedRandom:
		total := 0
		for _, n := range c.Names {
			total += c.weight(n)
		}
		if total <= 0 {
			return "", fmt.Errorf("every instance has weight 0 in the provisioning block")
		}
		x := c.Rand.IntN(total)
		for _, n := range c.Names {
			if x < c.weight(n) {
				return n, nil
			}
			x -= c.weight(n)
		}
		panic("unreachable")
	case spec.PolicyDomain:
		home, ok := c.Domains[strings.ToLower(domain)]
		if !ok {
			return "", fmt.Errorf("the provisioning policy is domain-based and domain %q has no home instance in the topology's provisioning block", domain)
		}
		return home, nil
	case spec.PolicyLeastUsed:
		best := ""
		for _, n := range c.Names {
			if best == "" || counts[n] < counts[best] {
				best = n
			}
		}
		return best, nil
	}
	return "", fmt.Errorf("unknown provisioning policy %q", c.Policy)
}

func (c *Chooser) weight(name string) int {
	if w, ok := c.Weights[name]; ok {
		return w
	}
	if len(c.Weights) == 0 {
		return 1
	}
	return 0 // weights are stated, and not for this instance
}

// DomainInstances are the instances where a domain must exist for the
// policy: only its home with domain-based, else every instance (an
// account of the domain can land on any).
func (c *Chooser) DomainInstances(domain, home string) []string {
	if c.Policy == spec.PolicyDomain {
		return []string{home}
	}
	return c.Names
}
