import platform
import subprocess
import sys
import sysconfig

from tests.conftest import REPO


def test_shim_re_exports_the_standard_library_module():
    assert platform.__file__.startswith(str(REPO))  # we really are the shadowing package
    assert platform.system() == "Linux" or platform.system() in {"Darwin", "Windows"}
    assert platform.python_version() == ".".join(map(str, sys.version_info[:3]))
    assert platform.machine()
    assert callable(platform.uname)


def test_torch_and_ray_import_from_the_repo_root_under_python_m():
    code = "import platform, torch, ray; print(platform.system(), platform.python_version(), torch.__version__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert platform.python_version() in out.stdout
    help_out = subprocess.run(
        [sys.executable, "-m", "platform.data.summary", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert help_out.returncode == 0 and "prepared" in help_out.stdout


def test_stdlib_path_is_the_one_loaded():
    assert sysconfig.get_paths()["stdlib"]
    assert platform._stdlib_platform.__file__.startswith(sysconfig.get_paths()["stdlib"])
