"""Put the JNI libraries of Spark's compression codecs where the JVM finds them without /tmp.

zstd-jni and snappy-java unpack their .so from their jar into java.io.tmpdir and load it from
there; a job's /tmp is a tmpfs mounted noexec, where loading fails ("failed to map segment from
shared object") and every shuffle with it. zstd-jni looks in java.library.path first, and
snappy-java does with -Dorg.xerial.snappy.use.systemlib=true (studiolo-spark-submit sets it):
so both libraries are unpacked once, here, into /usr/lib/jni (on the JVM's default path).
"""

import glob
import os
import platform
import shutil
import zipfile

import pyspark

JARS = os.path.join(os.path.dirname(pyspark.__file__), "jars")
TARGET = "/usr/lib/jni"
machine = platform.machine()
zstd_arch = {"x86_64": "amd64", "aarch64": "aarch64"}.get(machine, machine)
wanted = {
    "zstd-jni-*.jar": (f"linux/{zstd_arch}/", None),
    "snappy-java-*.jar": (f"org/xerial/snappy/native/Linux/{machine}/", "libsnappyjava.so"),
}
os.makedirs(TARGET, exist_ok=True)
for pattern, (folder, rename) in wanted.items():
    [jar] = glob.glob(os.path.join(JARS, pattern))
    with zipfile.ZipFile(jar) as archive:
        names = [n for n in archive.namelist() if n.startswith(folder) and n.endswith(".so")]
        if not names:
            raise SystemExit(f"{jar}: no native library under {folder}")
        for name in names:
            target = os.path.join(TARGET, rename or os.path.basename(name))
            with archive.open(name) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            print(f"{jar}!{name} -> {target}")  # noqa: T201 - the build log says what went where
