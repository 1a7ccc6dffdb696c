# Installs buktor-middleware as a Windows service that starts at boot and
# is restarted when it fails, then starts it. Run in an elevated PowerShell
# (Run as administrator), from the unpacked release folder (or pass
# -Folder):
#
#   powershell -ExecutionPolicy Bypass -File service\install-windows-service.ps1
#
# It runs the program's own commands, which work the same without this
# script:
#
#   buktor-middleware.exe check
#   buktor-middleware.exe service install
#   buktor-middleware.exe service start
#
# Logs: daily files in logs\ beside his-config.json. The service runs as
# LocalSystem. Stop and remove it with remove-windows-service.ps1.
#
# The program's service commands were tested under Wine's service manager
# in this project's CI; this script itself was never run there (no
# PowerShell). The Task Scheduler scripts beside it are the alternative.

param(
    [string]$Folder = (Split-Path -Parent $PSScriptRoot),
    [string]$Name = "BuktorMiddleware"
)
$ErrorActionPreference = "Stop"
# The program's warnings on standard error are not PowerShell errors: its
# exit code says whether it failed.
function Invoke-Middleware { $ErrorActionPreference = "Continue"; & $exe @args 2>&1 | Write-Host; $LASTEXITCODE }

$exe = Join-Path $Folder "buktor-middleware.exe"
$config = Join-Path $Folder "his-config.json"
if (-not (Test-Path $exe)) { throw "no ${exe}: run this from the unpacked release, or pass -Folder" }
if (-not (Test-Path $config)) { throw "no ${config}: copy an example from $Folder\examples first" }

# Check the config against the HIS before installing anything.
if ((Invoke-Middleware --config $config check) -ne 0) {
    throw "buktor-middleware check found errors: fix his-config.json, then run this again"
}

# Run again after a change, it keeps the installed service.
if (Get-Service -Name $Name -ErrorAction SilentlyContinue) {
    Write-Host "the service $Name is already installed; starting it (uninstall it first to change its config path)"
} elseif ((Invoke-Middleware --config $config service install --name $Name) -ne 0) {
    throw "service install failed (see the line above)"
}
if ((Invoke-Middleware service start --name $Name) -ne 0) {
    throw "service start failed (see the line above, and the files in $Folder\logs)"
}

Write-Host "open the firewall only if Buktor reaches this server directly (not through nginx or ngrok on it),"
Write-Host "with the port of server.listen in his-config.json (5000 by default):"
Write-Host "  New-NetFirewallRule -DisplayName 'Buktor middleware' -Direction Inbound -Protocol TCP -LocalPort 5000 -Action Allow"
