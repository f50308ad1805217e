# System-call cost: 10000 getppid() calls (answered by the host), then exit(0).
.globl _start
_start:
    mov $10000, %r12d
1:  mov $110, %eax
    syscall
    dec %r12d
    jnz 1b
    mov $60, %eax
    xor %edi, %edi
    syscall
