package config

import (
	"bytes"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Marshal writes the configuration as YAML that Parse reads back to an
// equal Config (Line fields aside). Values equal to their defaults are
// left out, and a target with a single TPG of tag 1 is written in the
// short form. A configuration that fails Validate is not written.
func (c *Config) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	root := mappingNode()
	if len(c.Backstores) > 0 {
		list := seqNode()
		for i := range c.Backstores {
			list.Content = append(list.Content, backstoreNode(&c.Backstores[i]))
		}
		addPair(root, "backstores", list)
	}
	targets := seqNode()
	for i := range c.Targets {
		targets.Content = append(targets.Content, targetNode(&c.Targets[i]))
	}
	addPair(root, "targets", targets)
	if t := c.Tokens; t != (Tokens{}) && t != (Tokens{Scope: ScopeAny}) {
		tm := mappingNode()
		if t.Scope != "" && t.Scope != ScopeAny {
			addPair(tm, "scope", strNode(t.Scope))
		}
		if t.SnapshotDir != "" {
			addPair(tm, "snapshot_dir", strNode(t.SnapshotDir))
		}
		if t.SnapshotSpace != 0 {
			addPair(tm, "snapshot_space", strNode(FormatSize(t.SnapshotSpace)))
		}
		if t.DefaultTimeout != 0 {
			addPair(tm, "default_timeout", intNode(t.DefaultTimeout))
		}
		if t.MaxTimeout != 0 {
			addPair(tm, "max_timeout", intNode(t.MaxTimeout))
		}
		if t.WriteBudget != 0 {
			addPair(tm, "write_budget", secondsNode(t.WriteBudget))
		}
		if t.MaxTokens != 0 {
			addPair(tm, "max_tokens", intNode(t.MaxTokens))
		}
		if t.KeyFile != "" {
			addPair(tm, "key_file", strNode(t.KeyFile))
		}
		addPair(root, "tokens", tm)
	}
	if l := c.Limits; l != (Limits{}) {
		lm := mappingNode()
		for _, kv := range []struct {
			key  string
			v    int64
			size bool
		}{
			{"max_connections", l.MaxConnections, false}, {"max_connections_per_ip", l.MaxConnectionsPerIP, false},
			{"login_timeout", l.LoginTimeout, false}, {"nop_interval", l.NOPInterval, false},
			{"nop_timeout", l.NOPTimeout, false}, {"send_timeout", l.SendTimeout, false},
			{"data_out_timeout", l.DataOutTimeout, false}, {"send_queue", l.SendQueue, true},
			{"data_in", l.DataIn, true}, {"data_out_budget", l.DataOutBudget, true},
			{"session_data_out_budget", l.SessionDataOutBudget, true},
			{"initiator_data_out_budget", l.InitiatorDataOutBudget, true},
		} {
			switch {
			case kv.v == 0:
			case kv.size:
				addPair(lm, kv.key, strNode(FormatSize(kv.v)))
			default:
				addPair(lm, kv.key, intNode(kv.v))
			}
		}
		addPair(root, "limits", lm)
	}
	if c.Reservations.StateDir != "" {
		rm := mappingNode()
		addPair(rm, "state_dir", strNode(c.Reservations.StateDir))
		addPair(root, "reservations", rm)
	}
	if c.Metrics.Listen != "" {
		mm := mappingNode()
		addPair(mm, "listen", strNode(c.Metrics.Listen))
		addPair(root, "metrics", mm)
	}
	if c.Copy.CrossTarget {
		copyMap := mappingNode()
		addPair(copyMap, "cross_target", boolNode(true))
		addPair(root, "copy", copyMap)
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func backstoreNode(b *Backstore) *yaml.Node {
	n := mappingNode()
	addPair(n, "name", strNode(b.Name))
	addPair(n, "type", strNode(b.Type))
	if b.Path != "" {
		addPair(n, "path", strNode(b.Path))
	}
	switch {
	case b.Size%1024 != 0:
		addPair(n, "size", intNode(b.Size))
	case b.Size != 0:
		addPair(n, "size", strNode(FormatSize(b.Size)))
	}
	if b.BlockSize != DefaultBlockSize {
		addPair(n, "block_size", intNode(int64(b.BlockSize)))
	}
	if b.PhysicalBlockSize != 0 {
		addPair(n, "physical_block_size", intNode(int64(b.PhysicalBlockSize)))
	}
	if b.Serial != DefaultSerial(b.Name) {
		addPair(n, "serial", strNode(b.Serial))
	}
	if b.Product != DefaultProduct(b.Name) {
		addPair(n, "product", strNode(b.Product))
	}
	if b.ReadOnly {
		addPair(n, "readonly", boolNode(true))
	}
	if !b.WriteCache {
		addPair(n, "write_cache", boolNode(false))
	}
	if b.Direct {
		addPair(n, "direct", boolNode(true))
	}
	return n
}

func targetNode(t *Target) *yaml.Node {
	n := mappingNode()
	addPair(n, "iqn", strNode(t.IQN))
	if t.Alias != "" {
		addPair(n, "alias", strNode(t.Alias))
	}
	if isShortForm(t) {
		addTPGBody(n, &t.TPGs[0])
		return n
	}
	tpgs := seqNode()
	for i := range t.TPGs {
		g := mappingNode()
		addPair(g, "tag", intNode(int64(t.TPGs[i].Tag)))
		addTPGBody(g, &t.TPGs[i])
		tpgs.Content = append(tpgs.Content, g)
	}
	addPair(n, "tpgs", tpgs)
	return n
}

func addTPGBody(n *yaml.Node, g *TPG) {
	portals := seqNode()
	portals.Style = yaml.FlowStyle
	for _, p := range g.Portals {
		portals.Content = append(portals.Content, strNode(p))
	}
	addPair(n, "portals", portals)
	if len(g.LUNs) > 0 {
		luns := seqNode()
		for _, l := range g.LUNs {
			m := mappingNode()
			m.Style = yaml.FlowStyle
			addPair(m, "lun", intNode(int64(l.LUN)))
			addPair(m, "backstore", strNode(l.Backstore))
			luns.Content = append(luns.Content, m)
		}
		addPair(n, "luns", luns)
	}
	if g.Auth != nil {
		addPair(n, "auth", authNode(g.Auth))
	}
	if len(g.ACLs) > 0 {
		acls := seqNode()
		for i := range g.ACLs {
			acls.Content = append(acls.Content, aclNode(&g.ACLs[i]))
		}
		addPair(n, "acls", acls)
	}
}

func aclNode(a *ACL) *yaml.Node {
	n := mappingNode()
	addPair(n, "initiator", strNode(a.Initiator))
	if a.LUNs != nil {
		luns := seqNode()
		luns.Style = yaml.FlowStyle
		for _, l := range a.LUNs {
			luns.Content = append(luns.Content, intNode(int64(l)))
		}
		addPair(n, "luns", luns)
	}
	if a.Auth != nil {
		addPair(n, "auth", authNode(a.Auth))
	}
	return n
}

func authNode(a *Auth) *yaml.Node {
	n := mappingNode()
	addPair(n, "chap_user", strNode(a.ChapUser))
	addPair(n, "chap_secret", strNode(a.ChapSecret))
	if a.MutualUser != "" || a.MutualSecret != "" {
		addPair(n, "mutual_user", strNode(a.MutualUser))
		addPair(n, "mutual_secret", strNode(a.MutualSecret))
	}
	return n
}

func mappingNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }
func seqNode() *yaml.Node     { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func intNode(v int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
}

// secondsNode writes a duration as seconds: an integer when whole, else
// a decimal fraction exact to the nanosecond.
func secondsNode(d time.Duration) *yaml.Node {
	if d%time.Second == 0 {
		return intNode(int64(d / time.Second))
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(d.Seconds(), 'f', -1, 64)}
}

func boolNode(v bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
}

func addPair(m *yaml.Node, key string, value *yaml.Node) {
	m.Content = append(m.Content, strNode(key), value)
}
