# Workload run inside the guest against a mounted share at $MNT (sourced by the harness).
# Every step checks its own result; a failure prints the reason and the kernel's messages.
# KIND=cifs: SMB2 has no Unix modes or owners (the client shows its file_mode/uid
# mount options, and chmod/chown are accepted without effect, as against Samba), so the
# mode and owner checks are left out there; sizes, times, links and content are checked.
fail() { echo "FAIL: $*"; dmesg | tail -40; exit 1; }
step() { echo "STEP: $*"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
cd / || fail cd

step "100 MiB in and out"
dd if=/dev/urandom of=/tmp/big bs=1M count=100 2>/dev/null || fail dd
dd if=/tmp/big of=$MNT/big bs=1M 2>/dev/null || fail "dd in"
drop
dd if=$MNT/big of=/tmp/back bs=1M 2>/dev/null || fail "dd out"
[ "$(md5sum < /tmp/big)" = "$(md5sum < /tmp/back)" ] || fail "big checksum"
rm -f /tmp/back $MNT/big

step "1000 files: create, stat, rename, delete"
mkdir $MNT/many || fail mkdir
i=0; while [ $i -lt 1000 ]; do echo "file $i" > $MNT/many/f$i || fail "create f$i"; i=$((i+1)); done
[ "$(ls $MNT/many | wc -l)" -eq 1000 ] || fail "count after create"
drop
i=0; while [ $i -lt 1000 ]; do [ "$(stat -c %s $MNT/many/f$i)" -eq $((${#i} + 6)) ] || fail "stat f$i"; i=$((i+1)); done
i=0; while [ $i -lt 1000 ]; do mv $MNT/many/f$i $MNT/many/g$i || fail "rename f$i"; i=$((i+1)); done
[ "$(cat $MNT/many/g999)" = "file 999" ] || fail "content after rename"
[ -e $MNT/many/f1 ] && fail "old name still there"
rm $MNT/many/g* || fail rm
[ "$(ls -A $MNT/many | wc -l)" -eq 0 ] || fail "count after delete"
rmdir $MNT/many || fail rmdir

step "deep tree"
p=$MNT/deep; for i in $(seq 1 40); do p=$p/level$i; done
mkdir -p $p || fail "mkdir -p"
echo leaf > $p/leaf || fail leaf
drop
[ "$(cat $p/leaf)" = leaf ] || fail "read leaf"
[ "$(find $MNT/deep -type d | wc -l)" -eq 41 ] || fail "find dirs: $(find $MNT/deep -type d | wc -l)"
rm -rf $MNT/deep || fail "rm -rf"
[ -e $MNT/deep ] && fail "deep still there"

step "hard and symbolic links"
echo target > $MNT/t || fail t
ln $MNT/t $MNT/hard || fail ln
ln -s t $MNT/soft || fail "ln -s"
[ "$(stat -c %h $MNT/t)" -eq 2 ] || fail nlink
[ "$(readlink $MNT/soft)" = t ] || fail readlink
[ "$(cat $MNT/soft)" = target ] || fail "follow"
[ "$(stat -c %i $MNT/t)" = "$(stat -c %i $MNT/hard)" ] || fail inode
rm $MNT/t; [ "$(cat $MNT/hard)" = target ] || fail "hard after rm"
rm $MNT/hard $MNT/soft

step "chmod, chown, touch -d"
echo x > $MNT/attrs
chmod 0751 $MNT/attrs || fail chmod
chown 1234:5678 $MNT/attrs || fail chown
touch -d "2020-01-02 03:04:05" $MNT/attrs || fail touch
drop
if [ "$KIND" = cifs ]; then
    [ "$(stat -c '%Y' $MNT/attrs)" = "1577934245" ] || fail "mtime: $(stat -c '%Y' $MNT/attrs)"
else
    [ "$(stat -c '%a %u %g %Y' $MNT/attrs)" = "751 1234 5678 1577934245" ] || \
        fail "attrs: $(stat -c '%a %u %g %Y' $MNT/attrs)"
fi
ls -la --full-time $MNT/attrs 2>/dev/null || ls -la $MNT/attrs

step "append, truncate, sparse"
printf 'a\n' > $MNT/f; printf 'b\n' >> $MNT/f
[ "$(cat $MNT/f)" = "$(printf 'a\nb')" ] || fail append
truncate -s 1 $MNT/f || fail "truncate down"
truncate -s 5000 $MNT/f || fail "truncate up"
drop
[ "$(stat -c %s $MNT/f)" -eq 5000 ] || fail "size after extend"
[ "$(head -c 1 $MNT/f)" = a ] || fail "first byte"
[ "$(tail -c 4999 $MNT/f | tr -d '\000' | wc -c)" -eq 0 ] || fail "extension not zero"
printf 'END' | dd of=$MNT/sparse bs=4096 seek=2000 conv=notrunc 2>/dev/null || fail sparse
drop
[ "$(stat -c %s $MNT/sparse)" -eq $((2000 * 4096 + 3)) ] || fail "sparse size"
[ "$(head -c $((2000 * 4096)) $MNT/sparse | tr -d '\000' | wc -c)" -eq 0 ] || fail "hole"
[ "$(tail -c 3 $MNT/sparse)" = END ] || fail "sparse tail"
rm $MNT/f $MNT/sparse $MNT/attrs

step "ls -la: modes, sizes, times"
mkdir $MNT/ls && printf '12345' > $MNT/ls/five && chmod 640 $MNT/ls/five
touch -d "2021-06-07 08:09:10" $MNT/ls/five
mkdir $MNT/ls/sub && chmod 710 $MNT/ls/sub
drop
out=$(ls -la $MNT/ls | grep five)
echo "$out"
case "$out" in *" 5 Jun  7  2021 five") ;; *) fail "ls five: $out";; esac
if [ "$KIND" != cifs ]; then
    case "$out" in "-rw-r-----"*) ;; *) fail "ls five mode: $out";; esac
    case "$(ls -ld $MNT/ls/sub)" in "drwx--x---"*) ;; *) fail "ls sub";; esac
fi
rm -rf $MNT/ls

step "concurrent writers"
for n in 1 2 3 4; do dd if=/dev/urandom of=/tmp/w$n bs=1M count=8 2>/dev/null; done
for n in 1 2 3 4; do cp /tmp/w$n $MNT/w$n & done
wait
drop
for n in 1 2 3 4; do cmp /tmp/w$n $MNT/w$n || fail "writer $n"; done
rm $MNT/w1 $MNT/w2 $MNT/w3 $MNT/w4

step "tar a tree in and out"
mkdir -p /tmp/tree/a/b /tmp/tree/c
cp /bin/busybox /tmp/tree/a/b/bin
echo hi > /tmp/tree/c/hi; ln -s ../c/hi /tmp/tree/a/link; chmod 700 /tmp/tree/c
(cd /tmp && tar cf - tree) | (cd $MNT && tar xf -) || fail "tar in"
drop
mkdir /tmp/out && (cd $MNT && tar cf - tree) | (cd /tmp/out && tar xf -) || fail "tar out"
diff -r /tmp/tree /tmp/out/tree || fail "tree differs"
[ "$(readlink /tmp/out/tree/a/link)" = ../c/hi ] || fail "link in tar"
rm -rf $MNT/tree

echo ALL-OK
