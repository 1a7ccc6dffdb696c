/*
 * TEST SUPPORT ONLY; never shipped. Rust 1.78 and later import ProcessPrng
 * from bcryptprimitives.dll, which every Windows 10/11 has and Wine 8.0
 * lacks. This stand-in, placed beside the .exe under Wine, answers
 * ProcessPrng with the system's preferred RNG through BCryptGenRandom.
 * tests/src/wine.rs builds it with MinGW-w64.
 */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    return BCryptGenRandom(NULL, data, (ULONG)length, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
