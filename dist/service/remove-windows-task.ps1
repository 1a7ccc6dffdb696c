# Stops and removes the task that install-windows-task.ps1 made. Events
# not yet written to the HIS stay in buktor-journal.db and are written when
# the middleware runs again. Run in an elevated PowerShell:
#
#   powershell -ExecutionPolicy Bypass -File service\remove-windows-task.ps1
#
# NOT RUN in this project's CI (no Windows there).

param([string]$TaskName = "BuktorMiddleware")
$ErrorActionPreference = "Stop"

if (-not (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue)) {
    Write-Host "no task ${TaskName}: nothing to remove"
    exit 0
}
Stop-ScheduledTask -TaskName $TaskName
# The task's cmd.exe is stopped; the middleware it started may outlive it.
# Ending it abruptly is safe: every accepted event is in the journal.
Get-Process -Name "buktor-middleware" -ErrorAction SilentlyContinue | Stop-Process -Force
Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
Write-Host "removed task $TaskName"
