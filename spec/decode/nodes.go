package decode

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/mailfleet/mailfleet/spec"
)

func (d *decoder) decodeNode(b *hcl.Block) {
	bd := d.body(b, nodeSchema)
	n := d.nodes[b.Labels[0]]
	n.Src = bd.src
	n.Hostname = bd.strDefault("hostname", "")
	if name, _, ok := bd.ref("network", "network"); ok {
		n.Network = d.networks[name]
	}
	if bd.has("address") {
		n.Address = bd.addr("address")
	} else {
		bd.errorf("", "Missing node address", "node %q has no address; every node needs one in its network.", n.Name)
	}
	if name, _, ok := bd.ref("kernel", "kernel"); ok {
		n.Kernel = d.kernels[name]
	}
	n.Standby = bd.boolean("standby")
	if sb := bd.single("ssh"); sb != nil {
		n.SSH = d.ssh(sb)
	}
	if fb := bd.single("fence"); fb != nil {
		fbd := d.body(fb, fencePortSchema)
		fp := &spec.FencePort{Src: fbd.src}
		if name, _, ok := fbd.ref("device", "fence"); ok {
			fp.Device = d.fences[name]
		}
		fp.Port, _ = fbd.integer("port", 1, 4096)
		n.Fence = fp
		// Diagnostics about the port point at the port attribute.
		n.Src.Attrs["fence.port"] = fbd.src.At("port")
	}
	d.t.Nodes = append(d.t.Nodes, n)
}

func (d *decoder) ssh(b *hcl.Block) spec.SSH {
	bd := d.body(b, sshSchema)
	s := spec.SSH{Src: bd.src}
	s.User = bd.strDefault("user", "")
	if bd.has("port") {
		s.Port, _ = bd.integer("port", 1, 65535)
	}
	s.KeyFile = bd.strDefault("key_file", "")
	if name, _, ok := bd.ref("jump", "node"); ok {
		s.Jump = d.nodes[name]
	}
	return s
}

func (d *decoder) decodeFence(b *hcl.Block) {
	bd := d.body(b, fenceSchema)
	f := &spec.FenceDevice{Name: b.Labels[0], Src: bd.src}
	kind := bd.strDefault("kind", "")
	switch spec.FenceKind(kind) {
	case spec.FencePower, spec.FenceIOBarrier:
		f.Kind = spec.FenceKind(kind)
	case "":
		// missing or not a string: already reported
	default:
		bd.errorf("kind", "Invalid fence kind", "kind must be \"power\" (a remote power switch) or \"io_barrier\" (cuts the node off the shared storage), not %q.", kind)
	}
	f.Agent = bd.strDefault("agent", "")
	f.Address = bd.addr("address")
	f.Login = bd.strDefault("login", "")
	f.Password = bd.secret("password")
	f.Ports, _ = bd.integer("ports", 1, 4096)
	d.fences[f.Name] = f
	d.t.Fences = append(d.t.Fences, f)
}

func (d *decoder) decodeStorage(b *hcl.Block) {
	bd := d.body(b, storageSchema)
	s := &spec.Storage{Name: b.Labels[0], Src: bd.src}
	seenDisk := map[string]bool{}
	for _, db := range bd.blocksOf("disk") {
		dbd := d.body(db, diskSchema)
		disk := &spec.Disk{Name: db.Labels[0], Storage: s, Src: dbd.src}
		if seenDisk[disk.Name] {
			dbd.errorf("", "Duplicate disk", "storage %q has two disks named %q.", s.Name, disk.Name)
			continue
		}
		seenDisk[disk.Name] = true
		for _, it := range dbd.refs("nodes", "node") {
			disk.Nodes = append(disk.Nodes, d.nodes[it.name])
		}
		for _, pb := range dbd.blocksOf("partition") {
			pbd := d.body(pb, partitionSchema)
			p := &spec.Partition{Name: pb.Labels[0], Disk: disk, Src: pbd.src}
			key := s.Name + "." + disk.Name + "." + p.Name
			if _, dup := d.partitions[key]; dup {
				pbd.errorf("", "Duplicate partition", "disk %q has two partitions named %q.", disk.Name, p.Name)
				continue
			}
			p.Device = pbd.strDefault("device", "")
			p.FSType = pbd.strDefault("fstype", "")
			p.Mountpoint = pbd.strDefault("mountpoint", "")
			p.Options = pbd.strDefault("options", "")
			d.partitions[key] = p
			disk.Partitions = append(disk.Partitions, p)
		}
		s.Disks = append(s.Disks, disk)
	}
	d.t.Storages = append(d.t.Storages, s)
}

var nodeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "network", Required: true}, {Name: "address"}, {Name: "hostname"}, {Name: "kernel"}, {Name: "standby"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "ssh"}, {Type: "fence"}},
}

var sshSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "user"}, {Name: "port"}, {Name: "key_file"}, {Name: "jump"}}}

var fencePortSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "device", Required: true}, {Name: "port", Required: true}}}

var fenceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "kind", Required: true}, {Name: "agent"}, {Name: "address", Required: true}, {Name: "login"},
	{Name: "password"}, {Name: "ports", Required: true},
}}

var storageSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "disk", LabelNames: []string{"name"}}}}

var diskSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "nodes"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "partition", LabelNames: []string{"name"}}},
}

// partitionSchema: device (a block device under /dev, or with fstype "none"
// and options "bind" a directory to bind-mount), fstype (default ext4),
// mountpoint, options (mount -o options, comma separated, optional; the
// Filesystem resource's options).
var partitionSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "device", Required: true}, {Name: "fstype"}, {Name: "mountpoint"}, {Name: "options"}}}
