package org.example;

/** The declared business exception of placeOrder. */
public class OrderRejected extends Exception {
    private static final long serialVersionUID = 1L;

    public OrderRejected() {}

    public OrderRejected(String message) { super(message); }
}
