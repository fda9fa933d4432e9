#!/usr/bin/env python3
"""Writes the Ansible inventory, host_vars and playbook that push the same
files mailfleet does (bench/deploy/run.sh): every rendered file of each host
(from `mailfleet build`'s manifest) plus the mailfleetd binary where render
installs it, with the same mode, owner and group; and reset.txt, the paths
to remove from each host between rounds.

usage: ansible_inputs.py STATUS.json BUILD_DIR MAILFLEETD WORK_DIR FORKS
"""
import json
import os
import sys

status_path, build, mailfleetd, work, forks = sys.argv[1:6]
status = json.load(open(status_path))
manifest = json.load(open(os.path.join(build, "manifest.json")))

addr = {n["name"]: n["addresses"][0].split("/")[0] for n in status["nodes"] if n.get("addresses")}
files = {}
for f in manifest["files"]:
    if f["node"] not in addr:
        continue  # the workstation's own files (the Vagrantfile)
    files.setdefault(f["node"], []).append({
        "src": os.path.join(build, f["node"], f["path"].lstrip("/")),
        "dest": f["path"], "mode": f["mode"], "owner": f["owner"], "group": f["group"]})
# mailfleetd goes where a unit or the cluster runs it: every node with a
# mailfleetd unit or the store's OCF agent.
for node, fs in files.items():
    if any("mailfleetd" in f["dest"] or f["dest"].endswith("/mailfleet/store") or f["dest"].endswith("balancer.json") for f in fs):
        fs.append({"src": mailfleetd, "dest": "/usr/local/bin/mailfleetd", "mode": "0755", "owner": "root", "group": "root"})

os.makedirs(os.path.join(work, "host_vars"), exist_ok=True)
with open(os.path.join(work, "inventory.ini"), "w") as inv:
    inv.write("[lab]\n")
    for node in sorted(files):
        inv.write("%s ansible_host=%s\n" % (node, addr[node]))
    inv.write("\n[lab:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n")
    inv.write("ansible_ssh_private_key_file=%s\n" % status["identity"])
    inv.write("ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'\n" % status["known_hosts"])
for node, fs in files.items():
    dirs = sorted({os.path.dirname(f["dest"]) for f in fs})
    with open(os.path.join(work, "host_vars", node + ".yml"), "w") as hv:
        json.dump({"files": fs, "dirs": dirs}, hv)  # JSON is YAML
with open(os.path.join(work, "push.yml"), "w") as pb:
    pb.write("""- hosts: lab
  gather_facts: false
  tasks:
    - name: directories
      file: {path: "{{ item }}", state: directory}
      loop: "{{ dirs }}"
    - name: files
      copy: {src: "{{ item.src }}", dest: "{{ item.dest }}", mode: "{{ item.mode }}", owner: "{{ item.owner }}", group: "{{ item.group }}"}
      loop: "{{ files }}"
""")
with open(os.path.join(work, "ansible.cfg"), "w") as cfg:
    cfg.write("[defaults]\nforks = %s\nhost_key_checking = True\nretry_files_enabled = False\n"
              "[ssh_connection]\npipelining = True\n" % forks)
with open(os.path.join(work, "reset.txt"), "w") as r:
    for node in sorted(files):
        r.write(node + " " + " ".join(f["dest"] for f in files[node]) + "\n")
with open(os.path.join(work, "count.txt"), "w") as c:
    c.write(str(sum(len(v) for v in files.values())))
