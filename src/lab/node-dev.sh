# Sourced by node-ns.sh (inside the node's private mount namespace) when the boot wrote
# gen/dri.tsv: the node's /dev/dri with its DRM character devices (226:N), owned by the video and
# render groups of the profile, and the stable /dev/dri/by-path names. Nothing is created in the
# machine's own /dev: a private tmpfs goes over /dev/dri when the machine has one, else over /dev
# itself, with the machine's basic nodes bound back (null, zero, full, random, urandom, tty, ptmx,
# pts, shm) and the usual fd links.
if [ -d /dev/dri ]; then
  mount -t tmpfs -o mode=0755,size=64k lab-dri /dev/dri
else
  mkdir -p "$N/realdev"
  mount --rbind /dev "$N/realdev"
  mount -t tmpfs -o mode=0755,size=1m lab-dev /dev
  for d in null zero full random urandom tty ptmx; do
    if [ -e "$N/realdev/$d" ]; then : > "/dev/$d"; mount --bind "$N/realdev/$d" "/dev/$d"; fi
  done
  for d in pts shm; do
    if [ -d "$N/realdev/$d" ]; then mkdir -p "/dev/$d"; mount --rbind "$N/realdev/$d" "/dev/$d"; fi
  done
  ln -s /proc/self/fd /dev/fd
  ln -s /proc/self/fd/0 /dev/stdin
  ln -s /proc/self/fd/1 /dev/stdout
  ln -s /proc/self/fd/2 /dev/stderr
  mkdir /dev/dri
fi
mkdir -p /dev/dri/by-path
# the groups, in the node's own /etc/group (its overlay's upper dir), when missing
while IFS="$(printf '\t')" read -r name major minor group gid addr kind; do
  grep -q "^$group:" /etc/group || echo "$group:x:$gid:" >> /etc/group
  mknod -m 0660 "/dev/dri/$name" c "$major" "$minor"
  chgrp "$gid" "/dev/dri/$name"
  ln -s "../$name" "/dev/dri/by-path/pci-$addr-$kind"
done < "$G/dri.tsv"
