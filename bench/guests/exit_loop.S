# Floor: 10000 hypercall exits from ring 3 (`out` to the hypercall port 0x80), then exit(0).
.globl _start
_start:
    mov $10000, %r12d
1:  out %al, $0x80
    dec %r12d
    jnz 1b
    mov $60, %eax
    xor %edi, %edi
    syscall
